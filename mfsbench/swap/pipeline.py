"""The swap pipeline: detect → align → identity stage → frame stage → paste-back, timed per stage.

Image mode and video mode are the same code: :meth:`SwapPipeline.inject` runs the identity stage
once for a source and builds the frame network with that identity baked in; :meth:`swap_frame` then
runs only the per-frame work. An image swap is one ``inject`` + one ``swap_frame``; a video swap is
one ``inject`` + a ``swap_frame`` per frame, exactly the paper's video mode. Frames without a face
pass through unchanged and are counted.

Which faces of a frame are swapped is :mod:`mfsbench.swap.selection`'s ``--face`` mode; in a video
the faces are followed between detections by :mod:`mfsbench.swap.tracking`, so the person chosen
where the video starts keeps being the one swapped, and the detector runs only every
``detect_every`` frames (and on a frame where a track was lost).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfsbench.device.timing import StageTimer
from mfsbench.errors import BadInputError, MissingDependencyError
from mfsbench.faces.detectors import FaceDetector, like_photo
from mfsbench.faces.types import Face
from mfsbench.models.base import SwapNet
from mfsbench.registry import ModelSpec
from mfsbench.swap.adapters import SwapAdapter
from mfsbench.swap.runners import StageRunner, TorchRunner
from mfsbench.swap.selection import IDENTITY_CHECKS, ReferenceIdentity, Selection, indexed, most_prominent
from mfsbench.swap.tracking import DEFAULT_DETECT_EVERY, FaceTracker, Track

STAGES = ("detect", "track", "select", "align", "identity", "frame_network", "paste_back")


def largest_face(faces: list[Face]) -> Face:
    """The official scripts keep the highest-scoring face; ties go to the larger box."""
    return max(faces, key=lambda f: (f.score, (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))


class SwapPipeline:
    """One model, one detector, one frame size; inject a source, then swap frames.

    The model is a zoo network (run by :class:`~mfsbench.swap.runners.TorchRunner`) or any
    :class:`~mfsbench.swap.runners.StageRunner`, such as a model card's ONNX graph
    (:class:`~mfsbench.swap.runners.OnnxCardRunner`): the detection, tracking, selection and timing
    here are the same for both.
    """

    def __init__(self, spec: ModelSpec, model: SwapNet | StageRunner, detector: FaceDetector, size: int,
                 detect_every: int = DEFAULT_DETECT_EVERY, *, selection: Selection | None = None,
                 reference: ReferenceIdentity | None = None) -> None:
        """``detect_every=k`` runs the detector on every k-th frame only (and on a frame where a
        track was lost); in between, faces are tracked. ``selection`` says which faces are swapped;
        ``--face reference`` needs the ``reference`` identity (:meth:`ReferenceIdentity.from_photo`).
        """
        spec.check_size(size)
        if detect_every < 1:
            raise BadInputError(f"--detect-every must be at least 1, got {detect_every}")
        self.selection = selection or Selection()
        if self.selection.mode == "reference" and reference is None:
            raise BadInputError("--face reference needs --reference-face IMAGE "
                                "(a photo of the person to swap)")
        self.reference = reference
        self.detect_every = detect_every
        self._frame_index = 0
        self.spec = spec
        self.runner: StageRunner = TorchRunner(spec, model, size) if isinstance(model, SwapNet) else model
        self.detector = detector
        self.tracker = FaceTracker(getattr(detector, "landmarks_in_box", None))
        self.size = size
        self.timer = StageTimer()
        self.frames_without_face = 0
        self.frames_swapped = 0
        self.faces_swapped = 0
        self.detections = 0  # detector runs on target frames (the source's is not counted)
        self.chosen: int | None = None  # --face one: the track id of the chosen person
        self.chosen_tracks: list[int] = []  # every track id --face one swapped, in order
        self._chosen_identity: ReferenceIdentity | None = None
        self._chosen_seen: tuple[np.ndarray, Face] | None = None  # its last detection, for _refind

    @property
    def adapter(self) -> SwapAdapter:
        """The zoo family's adapter (torch runner only)."""
        return self.runner.adapter  # type: ignore[attr-defined]

    @property
    def model(self) -> Any:
        """The zoo network (torch runner only)."""
        return self.runner.model  # type: ignore[attr-defined]

    @property
    def frame_net(self) -> Any:
        """The torch frame network built by :meth:`inject` (None before, or for another runner)."""
        return getattr(self.runner, "frame_net", None)

    def reset(self) -> None:
        """Forget the injected source (the next item has another)."""
        self.runner.reset()

    def _detect(self, image: np.ndarray) -> list[Face]:
        with self.timer.time("detect"):
            return self.detector.detect(image)

    def inject(self, source: np.ndarray) -> None:
        """Run the identity stage once for ``source`` and build the per-frame network.

        Raises:
            BadInputError: when no face is found in the source image.
        """
        faces = self._detect(source)
        if not faces:
            raise BadInputError("no face found in --source; use a photo with a clearly visible face")
        with self.timer.time("align"):
            crop = self.runner.align_source(source, largest_face(faces).landmarks5)
        with self.timer.time("identity"):
            self.runner.inject(crop)

    def swap_frame(self, frame: np.ndarray) -> np.ndarray:
        """Swap the selected face(s) of ``frame`` (the next frame of a video, or a still); a frame
        without a selected face is returned unchanged.

        Raises:
            BadInputError: ``--face-index`` past the faces of the first frame with a face.
        """
        if not self.runner.ready:
            raise RuntimeError("inject() a source before swapping frames")
        index = self._frame_index
        self._frame_index += 1
        with self.timer.time("track"):
            lost = self.tracker.propagate(frame)
        if lost or index % self.detect_every == 0:
            detections = self._detect(frame)
            self.detections += 1
            with self.timer.time("track"):
                self.tracker.associate(detections)
        with self.timer.time("select"):
            tracks = self._selected(frame, index)
        with self.timer.time("track"):
            faces = [self.tracker.refine(frame, track) for track in tracks]
        if not faces:
            self.frames_without_face += 1
            return frame
        out = np.array(frame)  # a plain copy; the faces are pasted into it one by one
        self._swap_faces(out, faces)
        self.frames_swapped += 1
        self.faces_swapped += len(faces)
        return like_photo(frame, out)  # a photo's alpha and 16 bits travel with it to write_image

    def _selected(self, frame: np.ndarray, index: int) -> list[Track]:
        """The tracks to swap on this frame, by the ``--face`` mode."""
        tracks = self.tracker.tracks
        mode = self.selection.mode
        if mode == "many":
            return list(tracks)
        if mode == "reference":
            assert self.reference is not None
            self._measure(frame, self.reference)
            return [t for t in tracks if t.distances and np.mean(t.distances) <= self.selection.threshold]
        chosen = self.tracker.alive(self.chosen) if self.chosen is not None else None
        if chosen is None and self.chosen is None and tracks:
            faces = [t.face for t in tracks]
            if self.selection.face_index is not None:
                where = "the target" if index == 0 else f"frame {index} (the first with a face)"
                chosen = tracks[indexed(faces, self.selection.face_index, where)]
            else:
                chosen = tracks[most_prominent(faces, frame.shape)]
        elif chosen is None and self.chosen is not None:
            chosen = self._refind(frame)
        if chosen is None:
            return []
        if chosen.id != self.chosen:
            self.chosen = chosen.id
            self.chosen_tracks.append(chosen.id)
        if chosen.detected_now:
            self._chosen_seen = (frame, chosen.face)  # a reference, not a copy: frames are not reused
        return [chosen]

    def _measure(self, frame: np.ndarray, identity: ReferenceIdentity) -> None:
        """Identity distances of tracks detected on this frame, up to :data:`IDENTITY_CHECKS` each."""
        for track in self.tracker.tracks:
            if track.detected_now and len(track.distances) < IDENTITY_CHECKS:
                track.distances.append(identity.distance(frame, track.face))

    def _refind(self, frame: np.ndarray) -> Track | None:
        """After the chosen person's track ended: the new track that is the same person, if any.

        With the recogniser: the closest track within the reference threshold (each new track is
        measured on its first detections), against the chosen face as last detected (described only
        now: a still or an unbroken track never pays for it). Without dlib's recogniser installed:
        none, as the chosen person is not guessed."""
        if self._chosen_identity is None and self._chosen_seen is not None:
            seen, self._chosen_seen = self._chosen_seen, None
            try:
                self._chosen_identity = ReferenceIdentity.of_face(*seen)
            except MissingDependencyError:
                return None
        if self._chosen_identity is None:
            return None
        self._measure(frame, self._chosen_identity)
        candidates = [t for t in self.tracker.tracks if t.distances and t.id not in self.chosen_tracks
                      and np.mean(t.distances) <= self.selection.threshold]
        return min(candidates, key=lambda t: float(np.mean(t.distances)), default=None)

    def _swap_faces(self, out: np.ndarray, faces: list[Face]) -> None:
        """Swap ``faces`` of ``out`` in place: every crop is taken from the frame as it came, the frame
        stage runs once on all of them when the runner batches (``run_frames``), then each is pasted
        back into its face's region only."""
        with self.timer.time("align"):
            aligned = [self.runner.align_target(out, face.landmarks5) for face in faces]
        with self.timer.time("frame_network"):
            crops = [crop for crop, _matrix in aligned]
            batched = getattr(self.runner, "run_frames", None)
            results = batched(crops) if batched is not None else [self.runner.run_frame(c) for c in crops]
        for (crop, matrix), result in zip(aligned, results, strict=True):
            self._paste(out, crop, matrix, result)

    def _paste(self, out: np.ndarray, crop: np.ndarray, matrix: np.ndarray, result: Any) -> None:
        """Decode one face's frame-stage output and paste it into ``out`` (its region only)."""
        with self.timer.time("paste_back"):
            swapped, mask = self.runner.decode(result)
            x0, y0, x1, y1 = _crop_region(matrix, crop.shape[:2], out.shape[:2])
            if x1 > x0 and y1 > y0:
                # the warped crop covers only this region: pasting into it alone gives the same pixels
                # (its mask is 0 elsewhere) at a fraction of the full-frame warps' cost
                shifted = matrix.astype(np.float64).copy()
                shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)
                out[y0:y1, x0:x1] = self.runner.paste(out[y0:y1, x0:x1], swapped, shifted, mask)


def _crop_region(matrix: np.ndarray, crop_shape: tuple[int, ...], frame_shape: tuple[int, ...]
                 ) -> tuple[int, int, int, int]:
    """``x0, y0, x1, y1``: the frame pixels the aligned crop maps onto, with a 2-px margin, clipped."""
    from mfsbench.faces.paste import inverse_matrix

    height, width = crop_shape[:2]
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], np.float64)
    points = corners @ inverse_matrix(matrix).T
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 2
    return max(x0, 0), max(y0, 0), min(x1, frame_shape[1]), min(y1, frame_shape[0])
