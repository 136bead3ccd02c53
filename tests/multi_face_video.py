"""A synthetic multi-person video made of real registry face photos, with each person's true place.

Each person is a square patch cut around the face of one photo of :mod:`tests.face_assets` (twice
the detected face box, so hair and chin come along), pasted on a fixed textured background and
moved and scaled linearly from a start to an end placement. The patch squares never overlap, so the
pixels a swap changes can be attributed to exactly one person: the ground truth that the tracking
tests and ``benchmarks/bench_swap.py`` measure the swapped region against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread while these tests swap: on the shared 2-core box, two OpenMP threads
    competing with other processes made the tiny test network's 64-px call take ~0.4 s instead of
    ~15 ms (measured). The outputs do not depend on it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: Patch side / detected face-box side.
PATCH_MARGIN = 2.0


@dataclass(frozen=True)
class Person:
    """A photo key of :func:`~mfsbench.quality.face_photos.fetch_face_photos` and its placements:
    ``(centre x, centre y, patch side)`` in pixels at the first and at the last frame."""

    photo: str
    start: tuple[float, float, float]
    end: tuple[float, float, float]

    def square(self, t: float) -> tuple[int, int, int]:
        """``(x0, y0, side)`` of the patch at time ``t`` in [0, 1]."""
        cx, cy, side = (a + (b - a) * t for a, b in zip(self.start, self.end, strict=True))
        side = round(side)
        return round(cx - side / 2), round(cy - side / 2), side


#: Four people in 640×480: Biden fills the most of the frame at the start (the ``--face one``
#: choice), the astronaut grows from smaller to far larger than him by the middle of the clip,
#: Obama and Tom Hanks stay small; everyone drifts.
FOUR_PEOPLE = (
    Person("biden", (150, 150, 200), (190, 170, 180)),
    Person("astronaut", (470, 140, 130), (480, 200, 280)),
    Person("obama", (100, 380, 150), (110, 380, 150)),
    Person("tom_hanks", (270, 390, 140), (260, 390, 140)),
)


def _overlap(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[2] and b[1] < a[1] + a[2]


def face_patch(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The square around ``box`` with side :data:`PATCH_MARGIN` × the box's, border replicated."""
    import cv2

    cx, cy = (box[:2] + box[2:]) / 2
    half = PATCH_MARGIN * max(box[2] - box[0], box[3] - box[1]) / 2
    pad = int(np.ceil(half)) + 1
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    x0, y0 = round(cx - half) + pad, round(cy - half) + pad
    side = round(2 * half)
    return padded[y0:y0 + side, x0:x0 + side]


def photo_patches(photos: dict, names: list[str]) -> dict[str, np.ndarray]:
    """``name`` → face patch of that photo's most prominent face (dlib detector)."""
    from mfsbench.faces.detectors import get_detector, read_image
    from mfsbench.swap.selection import most_prominent

    detector = get_detector("dlib")
    patches = {}
    for name in names:
        image = np.asarray(read_image(photos[name].path))
        faces = detector.detect(image)
        if not faces:
            raise RuntimeError(f"no face found in the registry photo {name}")
        patches[name] = face_patch(image, faces[most_prominent(faces, image.shape)].box)
    return patches


def make_multi_face_video(photos: dict, out: Path, *, people: tuple[Person, ...] = FOUR_PEOPLE,
                          frames: int = 40, fps: int = 25, size: tuple[int, int] = (640, 480)
                          ) -> list[dict[str, tuple[int, int, int]]]:
    """Write the clip to ``out`` (mp4v) and return, per frame, each photo key's ``(x0, y0, side)``.

    Raises:
        RuntimeError: OpenCV cannot write the mp4, or a photo shows no face.
    """
    import cv2

    width, height = size
    rng = np.random.default_rng(16)
    background = cv2.GaussianBlur(rng.integers(60, 200, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    patches = photo_patches(photos, [p.photo for p in people])
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4 to {out}")
    truth = []
    try:
        for i in range(frames):
            frame = background.copy()
            places = {}
            for person in people:
                x0, y0, side = person.square(i / max(frames - 1, 1))
                patch = cv2.resize(patches[person.photo], (side, side), interpolation=cv2.INTER_AREA)
                if x0 < 0 or y0 < 0 or x0 + side > width or y0 + side > height:
                    raise RuntimeError(f"{person.photo} leaves the {width}×{height} frame at frame {i}")
                frame[y0:y0 + side, x0:x0 + side] = patch
                places[person.photo] = (x0, y0, side)
            if any(_overlap(a, b) for a in places.values() for b in places.values() if a is not b):
                raise RuntimeError(f"two people overlap at frame {i}: {places}")
            writer.write(frame)
            truth.append(places)
    finally:
        writer.release()
    return truth
