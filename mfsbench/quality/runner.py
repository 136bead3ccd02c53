"""Run the FF++ quality protocol: sample frames, detect once, swap per row, evaluate, cache everything.

The work (every step resumes from :class:`~mfsbench.quality.store.QualityStore`); the gallery (3) is
built first, then each pair prepares its two videos (1, 2) just before its work items (4), and the
reverse pair follows it (:func:`decode_order`), so the frames decoded for detection are still in
memory (:class:`~mfsbench.quality.frames.DecodedFrames`) when they are swapped and evaluated:

1. **Prepare videos.** For the target and source video of each pair (once per video), count frames,
   take the protocol's evenly spaced indices and detect a face on each; a frame without one follows
   the protocol's ``no_face_rule`` (``next_frame``: the next frame *before the midpoint to the next
   sampled index*, logged as a substitution), or is skipped with its reason. A zero-byte or corrupt
   video is recorded with its reason, never fatal. One commit per video.
2. **Source frame** per source video, by ``source_frame_policy`` (``most_frontal``: the most frontal
   of its own sampled faces, by a landmark yaw/roll score, so the choice does not depend on which
   evaluator is installed; ``first``; ``same_index``: the target's frame index, else most frontal).
3. **Gallery**: one identity embedding per source identity of the *whole subset* (every shard
   computes the same gallery, so shards score identically), from a **held-out** frame: the first
   frame with a face at or after a midpoint between two sampled indices, which the target frames
   (substitutions stop before the midpoint) never use.
4. **Work items**: one per (target, source) pair × row. Rows are the calibration rows
   ``identity_oracle`` (the source's aligned face pasted into the target with the target's
   alignment: the upper bound of ID retrieval) and ``target_copy`` (the target unchanged: pose
   error 0, ID retrieval at chance), zoo models (through :class:`~mfsbench.swap.pipeline.SwapPipeline`
   fed the cached landmarks; the identity stage runs once per pair: image mode's (source image,
   target frame) swaps and video mode's once-per-target-video injection give the same pixels,
   because the identity stage is a pure function of the source crop, so the mode only changes the
   label and the per-frame cost shown on the plot), and FF++'s own manipulated videos at the same
   frame indices. Each
   swapped frame is evaluated with the **target's** face (the evaluators re-crop from its
   landmarks). Per-frame top-1, cosine and pose error are stored with the item, in one commit.

Shards (``--shard i/n``) take every n-th pair of the sorted pair list, so the partition is
deterministic and the union of shards is exactly the unsharded run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mfsbench.errors import BadInputError, MfsbenchError
from mfsbench.quality.frames import DecodedFrames
from mfsbench.quality.store import GALLERY_ROW, TARGET_ROW, FrameResult, QualityStore
from mfsbench.device.timing import StageTimer

RowKind = Literal["oracle", "copy", "zoo", "method"]
SOURCE_POLICIES = ("most_frontal", "first", "same_index")
NO_FACE_RULES = ("next_frame", "skip")
CALIBRATION_ROWS = ("identity_oracle", "target_copy")
PREPARE_ROW = "__prepare__"

#: Pipeline stages that are a network's (or an evaluator's) own forward pass; everything else
#: (decode, detect, align, paste-back, bookkeeping) counts as "outside inference".
INFERENCE_STAGES = frozenset({"identity", "frame_network", "eval_identity", "eval_pose", "eval_features"})


# ------------------------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class RowPlan:
    """One row of Table 2: what produces the swapped frames, and the key its results are stored under."""

    key: str
    model: str
    kind: RowKind
    label: str
    mode: str | None = None
    weights: str = "-"
    checkpoints: tuple[str, ...] = ()
    method: str | None = None
    seed: int = 0
    gmacs: float | None = None  # per output frame in this row's mode (paper convention), for the plot

    def info(self) -> dict[str, Any]:
        return {"model": self.model, "kind": self.kind, "label": self.label, "mode": self.mode,
                "weights": self.weights, "method": self.method, "gmacs": self.gmacs}


def calibration_rows() -> list[RowPlan]:
    return [
        RowPlan("identity_oracle", "identity_oracle", "oracle",
                "identity oracle (source face pasted into the target)"),
        RowPlan("target_copy", "target_copy", "copy", "target copy (target unchanged)"),
    ]


def method_row(method: str, compression: str, gmacs: float | None = None) -> RowPlan:
    return RowPlan(f"ffpp:{method}@{compression}", f"ffpp:{method}", "method",
                   f"{method} (FF++ {compression} videos)", weights=f"ffpp-{compression}", method=method,
                   gmacs=gmacs)


def zoo_row(model: str, mode: str, weights: str, *, checkpoints: Sequence[str], seed: int,
            gmacs: float | None = None) -> RowPlan:
    """``weights`` is the checkpoints' sha256 (joined by ``+``) or ``random-weights:<seed>``."""
    label = model + (" (random weights)" if weights.startswith("random-weights") else "")
    return RowPlan(f"{model}@{weights}/{mode}", model, "zoo", label, mode=mode, weights=weights,
                   checkpoints=tuple(checkpoints), seed=seed, gmacs=gmacs)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0 ≤ i < n) → (i, n); ``None`` → (0, 1).

    Raises:
        BadInputError: anything else.
    """
    if text is None:
        return 0, 1
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count):
        raise BadInputError(f"--shard {text!r} is not i/n with 0 <= i < n (e.g. --shard 0/4)")
    return int(index), int(count)


def shard_pairs(pairs: Iterable[Any], shard: tuple[int, int]) -> list[Any]:
    """Every n-th pair of the sorted list, starting at i: deterministic, disjoint, complete."""
    ordered = sorted(pairs, key=lambda p: (p.target, p.source))
    return ordered[shard[0]::shard[1]]


def decode_order(pairs: Sequence[Any]) -> list[Any]:
    """``pairs`` with each pair's reverse (same two videos, roles swapped) moved right after it.

    Results do not depend on the order; decoding does. Preparing a pair decodes both videos' sampled
    frames, and the reverse pair swaps the source's frames as its targets: run next, it finds them
    still in memory, so each video of a shard holding both directions is decoded once.
    """
    index = {(p.target, p.source): p for p in pairs}
    order: list[Any] = []
    placed: set[tuple[str, str]] = set()
    for pair in pairs:
        for key in ((pair.target, pair.source), (pair.source, pair.target)):
            if key in index and key not in placed:
                order.append(index[key])
                placed.add(key)
    return order


def evaluator_key(evaluator: Any | None) -> str:
    if evaluator is None:
        return "-"
    return f"{evaluator.name}@{evaluator.weights_sha256 or 'none'}"


def evalset_key(evaluators: Any) -> str:
    return "|".join(evaluator_key(e) for e in (evaluators.identity, evaluators.pose, evaluators.features))


def evaluator_meta(evaluators: Any) -> dict[str, Any]:
    """Name, weights hash and store key of each evaluator, for report headers."""
    out: dict[str, Any] = {}
    for metric in ("identity", "pose", "features"):
        ev = getattr(evaluators, metric)
        out[metric] = None if ev is None else {"name": ev.name, "sha256": ev.weights_sha256,
                                               "key": evaluator_key(ev)}
    return out


# ------------------------------------------------------------------------------------ frame choice


def frontal_score(face: Any) -> float:
    """Smaller is more frontal: nose offset from the eye midpoint (yaw) plus the eye line's tilt (roll)."""
    lmk = face.landmarks5
    eyes = lmk[1] - lmk[0]
    iod = max(float(np.linalg.norm(eyes)), 1e-6)
    yaw = abs(float(lmk[2, 0] - (lmk[0, 0] + lmk[1, 0]) / 2)) / iod
    roll = abs(float(np.arctan2(eyes[1], eyes[0])))
    return yaw + roll


def substitution_windows(sampled: Sequence[int], n_frames: int) -> list[range]:
    """Frames the ``next_frame`` rule may try for each sampled index: up to the next midpoint."""
    windows = []
    for k, start in enumerate(sampled):
        stop = (start + sampled[k + 1] + 1) // 2 if k + 1 < len(sampled) else n_frames
        windows.append(range(start, max(stop, start + 1)))
    return windows


def gallery_candidates(sampled: Sequence[int], n_frames: int) -> list[int]:
    """Held-out frames, in the order tried: from each midpoint up to the next sampled index."""
    taken = set()
    for window in substitution_windows(sampled, n_frames):
        taken.update(window)
    return [f for f in range(n_frames) if f not in taken]


def file_stamp(path: Path) -> str:
    """Size and modification time: cheap enough for 1000 videos, enough to notice a replaced file."""
    try:
        info = path.stat()
    except OSError:
        return "missing"
    return f"{info.st_size}:{info.st_mtime_ns}"


# -------------------------------------------------------------------------------------- timing


def outside_share(timings: dict[str, tuple[float, int]]) -> float | None:
    """Share of the measured time not spent in a network's forward pass."""
    total = sum(s for s, _ in timings.values())
    if total <= 0:
        return None
    inside = sum(s for stage, (s, _) in timings.items() if stage in INFERENCE_STAGES)
    return (total - inside) / total


# ------------------------------------------------------------------------------------------ runner


class _Replay:
    """A detector that returns the faces it is given: SwapPipeline then reuses the cached landmarks."""

    name = "cached"

    def __init__(self) -> None:
        self.faces: list[Any] = []

    def detect(self, image_bgr: np.ndarray) -> list[Any]:
        return self.faces


@dataclass
class VideoPlan:
    """A prepared target video: the chosen frame per sampled index (``None`` = skipped, with reason)."""

    video: str
    status: str
    reason: str | None
    n_frames: int
    picks: list[dict[str, Any]]


@dataclass
class _Item:
    """The decoded inputs of one (target, source) pair, shared by every row."""

    pair: Any
    target_frames: dict[int, np.ndarray]
    target_faces: dict[int, Any]
    sources: dict[int, tuple[int, np.ndarray, Any]]  # target frame -> (source frame, image, face)


@dataclass
class RunSummary:
    items_total: int = 0
    items_cached: int = 0
    items_run: int = 0
    frames_evaluated: int = 0
    seconds: float = 0.0


class QualityRunner:
    """Everything one ``mfsbench quality`` invocation needs; :meth:`run` does the work."""

    def __init__(self, *, protocol: Any, tree: Any, store: QualityStore, rows: Sequence[RowPlan],
                 evaluators: Any, subset: str, shard: tuple[int, int] = (0, 1),
                 detector_factory: Callable[[], Any] | None = None, progress: bool = True,
                 info: dict[str, Any] | None = None) -> None:
        """``info`` is added to the run's header in the store (dataset path, tree problems, ...)."""
        self.protocol, self.tree, self.store = protocol, tree, store
        checks = (("source_frame_policy", SOURCE_POLICIES), ("no_face_rule", NO_FACE_RULES))
        for field_name, allowed in checks:
            value = getattr(protocol, field_name)
            if value not in allowed:
                raise BadInputError(f"protocol {protocol.id}: {field_name} {value!r} is not one of "
                                    f"{', '.join(allowed)}; fix the protocol file")
        self.fp: str = protocol.fingerprint()
        self.rows = list(rows)
        self.evaluators = evaluators
        self.evalset = evalset_key(evaluators)
        self.subset = subset
        self.shard = shard
        self._detector_factory = detector_factory
        self._detector: Any | None = None
        self._pipelines: dict[str, Any] = {}
        self._frames = DecodedFrames()
        self.progress = progress
        self.info = dict(info or {})

    # -------------------------------------------------------------------------------- helpers

    def _bar(self, iterable: Iterable[Any], total: int, desc: str) -> Iterable[Any]:
        if not self.progress:
            return iterable
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit="item", file=sys.stderr, dynamic_ncols=True,
                    mininterval=0.5, leave=True)

    @property
    def detector(self) -> Any:
        if self._detector is None:
            if self._detector_factory is not None:
                self._detector = self._detector_factory()
            else:
                from mfsbench.faces.detectors import get_detector

                self._detector = get_detector(self.protocol.detector)
        return self._detector

    def _detect(self, frame: np.ndarray, timer: StageTimer) -> Any | None:
        from mfsbench.swap.pipeline import largest_face

        with timer.time("detect"):
            faces = self.detector.detect(frame)
        return largest_face(faces) if faces else None

    def _read(self, path: Path, indices: Sequence[int], timer: StageTimer) -> dict[int, np.ndarray]:
        """The wanted frames (read-only), decoding only those not decoded recently."""
        started = time.perf_counter()
        frames, decoded = self._frames.read(path, indices)
        if decoded:
            timer.add("decode", time.perf_counter() - started, decoded)
        return frames

    # ------------------------------------------------------------------------------- prepare

    def prepare_video(self, video: str) -> VideoPlan:
        """Sample, detect and apply the no-face rule for one original video (cached, one commit)."""
        path = Path(self.tree.original_video(video))
        stamp = file_stamp(path)
        picks = self.store.selection(self.fp, video, "target")
        known = self.store.video(self.fp, video)
        if known is not None and known[3] != stamp:
            raise BadInputError(f"{path} changed since {self.store.path} cached it (size/mtime {known[3]} -> "
                                f"{stamp}); pass a new --cache for the changed dataset")
        if known is not None and (known[0] != "ok" or picks is not None):
            return VideoPlan(video, known[0], known[1], known[2] or 0, picks or [])
        from mfsbench.quality.frames import VideoError, sample_indices, video_frame_count

        timer = StageTimer()
        try:
            with timer.time("decode"):
                n_frames = video_frame_count(path)
            sampled = sample_indices(n_frames, self.protocol.frames_per_video)
            frames = self._read(path, sampled, timer)
        except (VideoError, OSError) as exc:
            reason = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            with self.store.transaction():
                self.store.put_video(self.fp, video, "error", reason=reason, n_frames=None, stamp=stamp)
            return VideoPlan(video, "error", reason, 0, [])
        cached = self.store.detections(self.fp, video)
        picks = []
        windows = substitution_windows(sampled, n_frames)
        with self.store.transaction():
            for index, window in zip(sampled, windows, strict=True):
                picks.append(self._pick(path, video, index, window=window, frames=frames, cached=cached,
                                        timer=timer))
            self.store.put_video(self.fp, video, "ok", reason=None, n_frames=n_frames, stamp=stamp)
            self.store.put_selection(self.fp, video, "target", picks)
            self.store.put_item(self.fp, PREPARE_ROW, "-", target=video, source="", status="ok", reason=None,
                                results=[], timings=timer.items())
        return VideoPlan(video, "ok", None, n_frames, picks)

    def _face(self, video: str, path: Path, index: int, *, frames: dict[int, np.ndarray],
              cached: dict[int, Any], timer: StageTimer) -> Any | None:
        if index in cached:
            return cached[index]
        if index not in frames:
            frames.update(self._read(path, [index], timer))
        if index not in frames:
            return None
        face = self._detect(frames[index], timer)
        self.store.put_detection(self.fp, video, index, face)
        cached[index] = face
        return face

    def _pick(self, path: Path, video: str, index: int, *, window: range, frames: dict[int, np.ndarray],
              cached: dict[int, Any], timer: StageTimer) -> dict[str, Any]:
        rule = self.protocol.no_face_rule
        candidates = list(window) if rule == "next_frame" else [index]
        for position, candidate in enumerate(candidates):
            if position == 1:
                # the requested frame had no face: decode the rest of the window in one pass
                # instead of re-opening the video and decoding from frame 0 for every candidate
                missing = [c for c in candidates[1:] if c not in frames and c not in cached]
                if missing:
                    frames.update(self._read(path, missing, timer))
            if self._face(video, path, candidate, frames=frames, cached=cached, timer=timer) is not None:
                note = None if candidate == index else f"no face at frame {index}; used frame {candidate}"
                return {"requested": index, "frame": candidate, "reason": note}
        span = f"frames {candidates[0]}-{candidates[-1]}" if len(candidates) > 1 else f"frame {index}"
        return {"requested": index, "frame": None, "reason": f"no face in {span}"}

    def _sources(self, plan: VideoPlan, target_frames: dict[int, np.ndarray],
                 timer: StageTimer) -> dict[int, tuple[int, np.ndarray, Any]]:
        """The source image for each target frame: one per pair, or the same index (``same_index``).

        ``same_index`` (MegaFS) takes the source video's frame at the target's index and falls back
        to the most frontal source frame when that frame has no face (or the video is shorter).
        """
        fallback = self.source_frame(plan)
        path = Path(self.tree.original_video(plan.video))
        wanted: dict[int, int | None] = dict.fromkeys(target_frames, fallback)
        if self.protocol.source_frame_policy == "same_index":
            cached = self.store.detections(self.fp, plan.video)
            frames: dict[int, np.ndarray] = {}
            with self.store.transaction():
                for index in target_frames:
                    if index < plan.n_frames and self._face(plan.video, path, index, frames=frames,
                                                            cached=cached, timer=timer) is not None:
                        wanted[index] = index
        needed = sorted({f for f in wanted.values() if f is not None})
        images = self._read(path, needed, timer) if needed else {}
        faces = self.store.detections(self.fp, plan.video)
        return {i: (f, images[f], faces[f]) for i, f in wanted.items()
                if f is not None and f in images and faces.get(f) is not None}

    def source_frame(self, plan: VideoPlan) -> int | None:
        """The source image of a source video, by the protocol's policy (cached)."""
        chosen = self.store.selection(self.fp, plan.video, "source")
        if chosen is not None:
            return chosen["frame"]
        faces = self.store.detections(self.fp, plan.video)
        usable = [p["frame"] for p in plan.picks if p["frame"] is not None]
        frame: int | None = None
        if usable:
            policy = self.protocol.source_frame_policy
            if policy == "first":
                frame = usable[0]
            else:  # most_frontal (and same_index's fallback)
                frame = min(usable, key=lambda f: (frontal_score(faces[f]), f))
        with self.store.transaction():
            self.store.put_selection(self.fp, plan.video, "source", {"frame": frame})
        return frame

    def gallery_embedding(self, video: str) -> tuple[np.ndarray | None, str | None]:
        """One identity embedding per source identity, from a held-out frame (cached, one commit)."""
        identity = self.evaluators.identity
        key = evaluator_key(identity)
        chosen = self.store.selection(self.fp, video, "gallery")
        if chosen is not None and chosen["frame"] is None:
            return None, chosen["reason"]
        if chosen is not None:
            value = self.store.output(self.fp, GALLERY_ROW, key, target=video, source="",
                                      frame=chosen["frame"], kind="embedding")
            if value is not None:
                return value, None
        from mfsbench.quality.frames import VideoError, sample_indices, video_frame_count

        path = self.tree.original_video(video)
        timer = StageTimer()
        try:
            n_frames = video_frame_count(path)
        except (VideoError, OSError) as exc:
            reason = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            with self.store.transaction():
                self.store.put_selection(self.fp, video, "gallery", {"frame": None, "reason": reason})
            return None, reason
        sampled = sample_indices(n_frames, self.protocol.frames_per_video)
        cached = self.store.detections(self.fp, video)
        frames: dict[int, np.ndarray] = {}
        with self.store.transaction():
            for index in gallery_candidates(sampled, n_frames):
                face = self._face(video, path, index, frames=frames, cached=cached, timer=timer)
                if face is None:
                    continue
                frame = frames.get(index)
                if frame is None:
                    frame = self._read(path, [index], timer)[index]
                with timer.time("eval_identity"):
                    value = identity.embed(frame, face)
                self.store.put_selection(self.fp, video, "gallery", {"frame": index, "reason": None})
                self.store.put_output(self.fp, GALLERY_ROW, key, target=video, source="", frame=index,
                                      kind="embedding", value=value)
                self.store.put_item(self.fp, PREPARE_ROW, key, target=video, source="gallery", status="ok",
                                    reason=None, results=[], timings=timer.items())
                return np.asarray(value, np.float64), None
            reason = "no held-out frame with a face"
            self.store.put_selection(self.fp, video, "gallery", {"frame": None, "reason": reason})
        return None, reason

    # ------------------------------------------------------------------------------- swapping

    def _pipeline(self, row: RowPlan) -> Any:
        pipeline = self._pipelines.get(row.key)
        if pipeline is None:
            import torch

            from mfsbench.registry import create_model, get_spec
            from mfsbench.swap.checkpoints import load_checkpoints
            from mfsbench.swap.pipeline import SwapPipeline

            spec = get_spec(row.model)
            torch.manual_seed(row.seed)  # random-weights:<seed> rows are reproducible across runs/shards
            model = create_model(spec.name)
            load_checkpoints(spec, model, list(row.checkpoints))
            pipeline = SwapPipeline(spec, model, _Replay(), spec.native_size)
            self._pipelines[row.key] = pipeline
        return pipeline

    def _swap_frames(self, row: RowPlan, item: _Item,
                     timer: StageTimer) -> tuple[dict[int, np.ndarray], str | None]:
        """Swapped frames per chosen frame index, or a reason the whole item is skipped."""
        if row.kind == "copy":
            return dict(item.target_frames), None
        if row.kind == "method":
            return self._method_frames(row, item, timer)
        if not item.sources:
            return {}, f"no usable source frame in video {item.pair.source}"
        if row.kind == "oracle":
            return self._oracle(item, timer), None
        pipeline = self._pipeline(row)
        replay: _Replay = pipeline.detector
        pipeline.timer.clear()
        injected = None
        out = {}
        for index, frame in item.target_frames.items():
            if index not in item.sources:
                continue
            source_index, source_img, source_face = item.sources[index]
            if source_index != injected:  # once per pair, or per frame under same_index
                replay.faces = [source_face]
                pipeline.inject(source_img)
                injected = source_index
            replay.faces = [item.target_faces[index]]
            out[index] = pipeline.swap_frame(frame)
        timer.merge(pipeline.timer, skip=("detect",))  # replayed landmarks: detection was timed when it ran
        pipeline.frame_net = None  # the next item has another source
        return out, None

    def _method_frames(self, row: RowPlan, item: _Item,
                       timer: StageTimer) -> tuple[dict[int, np.ndarray], str | None]:
        """FF++'s own swap of this pair, at the target's chosen frame indices."""
        from mfsbench.quality.frames import VideoError

        path = Path(self.tree.manipulated_video(row.method, item.pair))
        if not path.is_file():
            return {}, f"missing {path}"
        try:
            return self._read(path, list(item.target_frames), timer), None
        except (VideoError, OSError) as exc:
            return {}, f"{path}: {exc}"

    def _oracle(self, item: _Item, timer: StageTimer) -> dict[int, np.ndarray]:
        """The source's aligned face, pasted into the target with the target's own alignment."""
        from mfsbench.faces.align import align_face
        from mfsbench.faces.paste import paste_back

        size = 224
        crops: dict[int, np.ndarray] = {}
        out = {}
        for index, frame in item.target_frames.items():
            if index not in item.sources:
                continue
            source_index, source_img, source_face = item.sources[index]
            with timer.time("align"):
                if source_index not in crops:
                    crops[source_index] = align_face(source_img, source_face.landmarks5, "arcface", size)[0]
                source_crop = crops[source_index]
                _, matrix = align_face(frame, item.target_faces[index].landmarks5, "arcface", size)
            with timer.time("paste_back"):
                out[index] = paste_back(frame, source_crop, matrix, None)
        return out

    # ------------------------------------------------------------------------------- evaluation

    def _target_side(self, target: str, index: int, frame: np.ndarray, face: Any,
                     timer: StageTimer) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Pose and features of the unswapped target frame (cached; shared by all rows)."""
        def cached(kind: str, evaluator: Any, compute: Callable[[], Any]) -> np.ndarray | None:
            if evaluator is None:
                return None
            key = evaluator_key(evaluator)
            where = {"target": target, "source": "", "frame": index, "kind": kind}
            value = self.store.output(self.fp, TARGET_ROW, key, **where)
            if value is None:
                with timer.time(f"eval_{kind}"):
                    value = np.asarray(compute(), np.float64)
                self.store.put_output(self.fp, TARGET_ROW, key, **where, value=value)
            return value

        pose = cached("pose", self.evaluators.pose, lambda: self.evaluators.pose.pose(frame, face))
        features = cached("features", self.evaluators.features,
                          lambda: self.evaluators.features.features(frame, face))
        return pose, features

    def _evaluate(self, row: RowPlan, pair: Any, index: int, *, swapped: np.ndarray, face: Any,
                  target_pose: np.ndarray | None, gallery: np.ndarray, gallery_ids: list[str],
                  timer: StageTimer) -> FrameResult:
        from mfsbench.quality.evaluators import id_retrieval, pose_error

        ev = self.evaluators
        top1 = cos = err = None
        if ev.identity is not None:
            with timer.time("eval_identity"):
                emb = np.asarray(ev.identity.embed(swapped, face), np.float64)
            self.store.put_output(self.fp, row.key, evaluator_key(ev.identity), target=pair.target,
                                  source=pair.source, frame=index, kind="embedding", value=emb)
            hits, cosines = id_retrieval(emb[None], gallery, np.array([gallery_ids.index(pair.source)]))
            top1, cos = bool(hits[0]), float(cosines[0])
        if ev.pose is not None and target_pose is not None:
            with timer.time("eval_pose"):
                pose = np.asarray(ev.pose.pose(swapped, face), np.float64)
            self.store.put_output(self.fp, row.key, evaluator_key(ev.pose), target=pair.target,
                                  source=pair.source, frame=index, kind="pose", value=pose)
            err = float(pose_error(pose[None], target_pose[None])[0])
        if ev.features is not None:
            with timer.time("eval_features"):
                feats = np.asarray(ev.features.features(swapped, face), np.float64)
            self.store.put_output(self.fp, row.key, evaluator_key(ev.features), target=pair.target,
                                  source=pair.source, frame=index, kind="features", value=feats)
        return FrameResult(index, "ok", None, top1, cos, err)

    # ------------------------------------------------------------------------------------- run

    def run(self) -> RunSummary:
        """Do (or resume) every work item of this shard; returns what was done and what was skipped."""
        started = time.perf_counter()
        summary = RunSummary()
        all_pairs = self.tree.pairs(self.subset)
        pairs = shard_pairs(all_pairs, self.shard)
        self.store.put_meta(f"run:{self.fp}:{self.evalset}", {
            "protocol_id": self.protocol.id, "dataset": "ffpp", "compression": self.protocol.compression,
            "subset": self.subset, "pairs": len(all_pairs), "evaluators": evaluator_meta(self.evaluators),
            "disabled": dict(self.evaluators.disabled), "card": self.protocol.card(), **self.info,
        })
        for position, row in enumerate(self.rows):
            self.store.put_row(self.fp, row.key, self.evalset, position, row.info())
        todo = [(p, r) for p in pairs for r in self.rows]
        summary.items_total = len(todo)
        missing = [(p, r) for p, r in todo
                   if not self.store.item_done(self.fp, r.key, self.evalset, p.target, p.source)]
        summary.items_cached = summary.items_total - len(missing)
        pending = {(p.target, p.source) for p, _ in missing}
        if not pending:
            summary.seconds = time.perf_counter() - started
            return summary
        gallery_ids, gallery = self._gallery(sorted({p.source for p in all_pairs}))
        plans: dict[str, VideoPlan] = {}
        todo_pairs = decode_order([p for p in pairs if (p.target, p.source) in pending])
        for pair in self._bar(todo_pairs, len(todo_pairs), "evaluate pairs"):
            # planned just before the pair, so its target frames are still decoded when it runs
            for video in (pair.target, pair.source):
                if video not in plans:
                    plans[video] = self.prepare_video(video)
            summary.items_run += self._run_pair(pair, plans, gallery_ids, gallery, summary)
        summary.seconds = time.perf_counter() - started
        return summary

    def _gallery(self, sources: list[str]) -> tuple[list[str], np.ndarray]:
        if self.evaluators.identity is None:
            return [], np.zeros((0, 1))
        ids, rows = [], []
        for video in self._bar(sources, len(sources), "gallery"):
            value, _ = self.gallery_embedding(video)
            if value is not None:
                ids.append(video)
                rows.append(value)
        return ids, (np.stack(rows) if rows else np.zeros((0, 1)))

    def _run_pair(self, pair: Any, plans: dict[str, VideoPlan], gallery_ids: list[str], gallery: np.ndarray,
                  summary: RunSummary) -> int:
        rows = [r for r in self.rows if not self.store.item_done(self.fp, r.key, self.evalset,
                                                                  pair.target, pair.source)]
        target, source = plans[pair.target], plans[pair.source]
        reason = None
        if target.status != "ok":
            reason = f"target video unusable: {target.reason}"
        elif source.status != "ok":
            reason = f"source video unusable: {source.reason}"
        elif self.evaluators.identity is not None and pair.source not in gallery_ids:
            reason = f"no gallery embedding for source {pair.source}"
        if reason is not None:
            for row in rows:
                self.store.put_item(self.fp, row.key, self.evalset, target=pair.target, source=pair.source,
                                    status="skipped", reason=reason, results=[], timings={},
                                    planned=self.protocol.frames_per_video)
            return len(rows)
        timer = StageTimer()
        faces = self.store.detections(self.fp, pair.target)
        chosen = {p["frame"]: p for p in target.picks if p["frame"] is not None}
        path = self.tree.original_video(pair.target)
        target_frames = self._read(path, list(chosen), timer)
        target_faces = {i: faces[i] for i in target_frames}
        item = _Item(pair, target_frames, target_faces, self._sources(source, target_frames, timer))
        for row in rows:
            if row.kind == "zoo":
                self._pipeline(row)  # a checkpoint that does not load is the user's error: exit, not skip
            row_timer = timer.copy() if row is rows[0] else StageTimer()
            with self.store.transaction():
                target_side = {i: self._target_side(pair.target, i, f, target_faces[i], row_timer)
                               for i, f in target_frames.items()}
                try:
                    swapped, skip = self._swap_frames(row, item, row_timer)
                except MfsbenchError as exc:
                    swapped, skip = {}, f"{row.model}: {exc}"
                results = [FrameResult(p["requested"], "skipped", p["reason"]) for p in target.picks
                           if p["frame"] is None]
                results += [FrameResult(chosen[i]["requested"], "skipped", f"frame {i} could not be decoded")
                            for i in chosen if i not in target_frames]
                if skip is None:
                    for index in sorted(target_frames):
                        if index not in swapped:
                            results.append(FrameResult(chosen[index]["requested"], "skipped",
                                                       f"no swapped frame {index} (no source image, or "
                                                       "missing from the manipulated video)"))
                            continue
                        result = self._evaluate(row, pair, index, swapped=swapped[index],
                                                face=target_faces[index], target_pose=target_side[index][0],
                                                gallery=gallery, gallery_ids=gallery_ids, timer=row_timer)
                        results.append(FrameResult(chosen[index]["requested"], result.status, result.reason,
                                                   result.top1, result.cos, result.pose_err))
                        summary.frames_evaluated += 1
                    results.sort(key=lambda r: r.frame)
                status = "ok" if skip is None else "skipped"
                self.store.put_item(self.fp, row.key, self.evalset, target=pair.target, source=pair.source,
                                    status=status, reason=skip, results=results if skip is None else [],
                                    timings=row_timer.items(), planned=self.protocol.frames_per_video)
        return len(rows)
