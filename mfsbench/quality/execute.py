"""One (target, source) pair × every row: swap, evaluate with the target's face, store in one commit.

Rows: the calibration rows (:func:`~mfsbench.quality.plan.calibration_rows`), zoo models (through
:class:`~mfsbench.swap.pipeline.SwapPipeline` fed the cached landmarks; the identity stage runs once
per pair: image mode's (source image, target frame) swaps and video mode's once-per-target-video
injection give the same pixels, because the identity stage is a pure function of the source crop,
so the mode only changes the label and the per-frame cost shown on the plot), and FF++'s own
manipulated videos at the same frame indices. Each swapped frame is evaluated with the
**target's** face (``eval_crop_landmarks = target``: the evaluators re-crop from its landmarks).
Per-frame retrieved identity, top-1, cosine and pose error are stored with the item, in one commit;
a frame whose pose fit fails (``landmark_pnp``'s ``solvePnP``) is a skipped frame with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.device.timing import StageTimer
from mfsbench.errors import MfsbenchError
from mfsbench.quality.card import evaluator_key
from mfsbench.quality.gallery import Gallery, GalleryBuilder
from mfsbench.quality.plan import FLOOR_JPEG_QUALITY, RowPlan
from mfsbench.quality.prepare import VideoPlan
from mfsbench.quality.store import TARGET_ROW, FrameResult


class _Replay:
    """A detector that returns the faces it is given: SwapPipeline then reuses the cached landmarks."""

    name = "cached"

    def __init__(self) -> None:
        self.faces: list[Any] = []

    def detect(self, image_bgr: np.ndarray) -> list[Any]:
        return self.faces


@dataclass
class PairInputs:
    """The decoded inputs of one (target, source) pair, shared by every row."""

    pair: Any
    target_frames: dict[int, np.ndarray]
    target_faces: dict[int, Any]
    sources: dict[int, tuple[int, np.ndarray, Any]]  # target frame -> (source frame, image, face)


def jpeg_copy(frame: np.ndarray, quality: int = FLOOR_JPEG_QUALITY) -> np.ndarray:
    """``frame`` encoded as JPEG at ``quality`` and decoded again (the floor row's frame)."""
    from mfsbench.faces.align import cv2_module

    cv2 = cv2_module()
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(frame), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise MfsbenchError("OpenCV could not JPEG-encode a frame")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


class PairExecutor(GalleryBuilder):
    """Stage 4 of a run: the work items of one pair (:meth:`run_pair`)."""

    _pipelines: dict[str, Any]
    rows: list[RowPlan]

    def _pipeline(self, row: RowPlan) -> Any:
        pipeline = self._pipelines.get(row.key)
        if pipeline is None:
            import torch

            from mfsbench.registry import create_model, get_spec
            from mfsbench.swap.checkpoints import load_checkpoints
            from mfsbench.swap.pipeline import SwapPipeline

            spec = get_spec(row.model)
            torch.manual_seed(row.seed)  # random-weights:<seed> rows are reproducible across runs/shards
            if spec.card is not None:  # a model card: its ONNX graph in ONNX Runtime, the encoder's weights
                from mfsbench.swap.runners import card_runner

                model: Any = card_runner(spec, list(row.checkpoints), allow_random=not row.checkpoints,
                                         seed=row.seed)
            else:
                model = create_model(spec.name)
                load_checkpoints(spec, model, list(row.checkpoints))
                if row.runtime == "onnxruntime":  # the frame stage exported per identity, as swap does
                    from mfsbench.swap.runners import OnnxZooRunner

                    model = OnnxZooRunner(spec, model, spec.native_size)
            pipeline = SwapPipeline(spec, model, _Replay(), spec.native_size)
            self._pipelines[row.key] = pipeline
        return pipeline

    def _swap_frames(self, row: RowPlan, item: PairInputs,
                     timer: StageTimer) -> tuple[dict[int, np.ndarray], str | None]:
        """Swapped frames per chosen frame index, or a reason the whole item is skipped."""
        if row.kind == "copy":
            with timer.time("reencode"):
                return {i: jpeg_copy(f) for i, f in item.target_frames.items()}, None
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
        pipeline.reset()  # the next item has another source
        return out, None

    def _method_frames(self, row: RowPlan, item: PairInputs,
                       timer: StageTimer) -> tuple[dict[int, np.ndarray], str | None]:
        """FF++'s own swap of this pair, at the target's chosen frame indices."""
        from mfsbench.quality.frames import FIX, VideoError

        path = Path(self.tree.manipulated_video(row.method, item.pair))
        if not path.is_file():  # both reasons are read back as dataset problems (.problems)
            return {}, f"missing manipulated video {path}"
        try:
            frames = self._read(path, list(item.target_frames), timer)
            if item.target_frames and not frames:  # opens, but not one wanted frame decodes
                raise VideoError(f"{path}: no decodable frame (corrupt stream); {FIX}")
            return frames, None
        except (VideoError, OSError) as exc:
            text = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            return {}, f"undecodable manipulated video: {text}"

    def _oracle(self, item: PairInputs, timer: StageTimer) -> dict[int, np.ndarray]:
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
                  target_pose: np.ndarray | None, gallery: Gallery, timer: StageTimer) -> FrameResult:
        from mfsbench.quality.evaluators import pose_error

        ev = self.evaluators
        top1 = cos = err = retrieved = None
        where = {"target": pair.target, "source": pair.source, "frame": index}
        if ev.identity is not None:
            with timer.time("eval_identity"):
                emb = np.asarray(ev.identity.embed(swapped, face), np.float64)
            self.store.put_output(self.fp, row.key, evaluator_key(ev.identity), **where, kind="embedding",
                                  value=emb)
            retrieved, top1, cos = gallery.retrieve(emb, pair.source)
        if ev.pose is not None and target_pose is not None:
            with timer.time("eval_pose"):
                pose = np.asarray(ev.pose.pose(swapped, face), np.float64)
            self.store.put_output(self.fp, row.key, evaluator_key(ev.pose), **where, kind="pose", value=pose)
            for what, angles in (("target", target_pose), ("swapped", pose)):
                if not np.isfinite(angles).all():
                    reason = f"pose fit failed on the {what} frame ({ev.pose.name} returned no angles)"
                    return FrameResult(index, "skipped", reason)
            err = float(pose_error(pose[None], target_pose[None])[0])
        if ev.features is not None:
            with timer.time("eval_features"):
                feats = np.asarray(ev.features.features(swapped, face), np.float64)
            self.store.put_output(self.fp, row.key, evaluator_key(ev.features), **where, kind="features",
                                  value=feats)
        return FrameResult(index, "ok", None, top1, cos, err, retrieved)

    # -------------------------------------------------------------------------------------- pair

    def run_pair(self, pair: Any, plans: dict[str, VideoPlan], gallery: Gallery, summary: Any) -> int:
        """Every row of ``pair`` not yet in the store; returns the number of work items written."""
        rows = [r for r in self.rows
                if not self.store.item_done(self.fp, r.key, self.evalset, pair.target, pair.source)]
        target, source = plans[pair.target], plans[pair.source]
        reason = None
        if target.status != "ok":
            reason = f"target video unusable: {target.reason}"
        elif source.status != "ok":
            reason = f"source video unusable: {source.reason}"
        elif self.evaluators.identity is not None and pair.source not in gallery.ids:
            reason = f"no gallery embedding for source {pair.source}"
        if reason is not None:
            for row in rows:
                self._put_item(row.key, self.evalset, target=pair.target, source=pair.source,
                               status="skipped", reason=reason, results=[], timings={},
                               planned=self.protocol.frames_per_video)
            return len(rows)
        timer = StageTimer()
        faces = self.store.detections(self.fp, pair.target)
        chosen = {p["frame"]: p for p in target.picks if p["frame"] is not None}
        path = self.tree.original_video(pair.target)
        target_frames = self._read(path, list(chosen), timer)
        target_faces = {i: faces[i] for i in target_frames}
        item = PairInputs(pair, target_frames, target_faces, self._sources(source, target_frames, timer))
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
                                                gallery=gallery, timer=row_timer)
                        results.append(FrameResult(chosen[index]["requested"], result.status, result.reason,
                                                   result.top1, result.cos, result.pose_err, result.top1_id))
                        summary.frames_evaluated += int(result.status == "ok")
                    results.sort(key=lambda r: r.frame)
                status = "ok" if skip is None else "skipped"
                self._put_item(row.key, self.evalset, target=pair.target, source=pair.source,
                               status=status, reason=skip, results=results if skip is None else [],
                               timings=row_timer.items(), planned=self.protocol.frames_per_video)
        return len(rows)
