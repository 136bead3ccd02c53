"""Preparing the videos of a pair: sample, detect once, apply the no-face rule, pick the source frame.

For the target and source video of each pair (once per video): count frames, take the protocol's
evenly spaced indices (``frame_sampling = even_bin_centres``) and detect a face on each; a frame
without one follows the protocol's ``no_face_rule`` (``next_frame``: the next frame *before the
midpoint to the next sampled index*, logged as a substitution), or is skipped with its reason. A
zero-byte or corrupt video is recorded with its reason, never fatal. One commit per video.

The **source frame** per source video follows ``source_frame_policy`` (``most_frontal``: the most
frontal of its own sampled faces, by a landmark yaw/roll score, so the choice does not depend on
which evaluator is installed; ``first``; ``same_index``: the target's frame index, else most frontal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.device.timing import StageTimer
from mfsbench.errors import BadInputError
from mfsbench.quality.plan import PREPARE_ROW
from mfsbench.quality.state import RunnerState

SOURCE_POLICIES = ("most_frontal", "first", "same_index")
NO_FACE_RULES = ("next_frame", "skip")


@dataclass
class VideoPlan:
    """A prepared target video: the chosen frame per sampled index (``None`` = skipped, with reason)."""

    video: str
    status: str
    reason: str | None
    n_frames: int
    picks: list[dict[str, Any]]


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
    """Held-out frames in the order tried (``gallery_frame = first_held_out``): every frame that no
    sampled index or substitution window can use, in frame order. With bin-centre sampling the
    frames before the first sampled index come first, so the gallery frame is usually frame 0."""
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


class VideoPreparer(RunnerState):
    """Stages 1 and 2 of a run: prepared videos (cached) and each source video's source frame."""

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
            self._put_item(PREPARE_ROW, "-", target=video, source="", status="ok", reason=None,
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
