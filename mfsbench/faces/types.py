"""The one value every face detector returns.

Every model in the zoo is aligned from the same five points, in insightface's order (image left/right,
not the subject's): left eye, right eye, nose tip, left mouth corner, right mouth corner. Keeping one
order and one coordinate frame (pixels of the image passed to ``detect``) is what lets any detector
drive any alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose_tip", "left_mouth", "right_mouth")


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    Attributes:
        box: ``(4,)`` float64, ``x1, y1, x2, y2`` in pixels of the input image (may extend past its
            border for partly visible faces: the detector's box is kept as it is).
        score: the detector's own confidence. Only comparable between faces of the same detector
            (dlib's HOG gives an SVM margin, SCRFD a probability).
        landmarks5: ``(5, 2)`` float64 ``(x, y)`` in :data:`LANDMARK_NAMES` order.
    """

    box: np.ndarray
    score: float
    landmarks5: np.ndarray

    def __post_init__(self) -> None:
        box = np.asarray(self.box, dtype=np.float64).reshape(-1)
        landmarks = np.asarray(self.landmarks5, dtype=np.float64)
        if box.shape != (4,):
            raise ValueError(f"Face.box must hold 4 numbers (x1, y1, x2, y2), got shape {box.shape}")
        if landmarks.shape != (5, 2):
            raise ValueError(f"Face.landmarks5 must be (5, 2), got shape {landmarks.shape}")
        # frozen: assign the normalised arrays through object.__setattr__
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "landmarks5", landmarks)
        object.__setattr__(self, "score", float(self.score))

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def interocular(self) -> float:
        """Distance between the eye centres: the natural unit for landmark errors."""
        return float(np.linalg.norm(self.landmarks5[1] - self.landmarks5[0]))
