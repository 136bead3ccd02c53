"""Real face photos for the face tests, fetched from registry packages into a cache outside the repo.

No face photo is committed, and none is synthesised. The images come from two pinned packages on
the package index (``specs/deployment_adb_face_assets.md`` §11), plus scikit-image when it is
installed:

* ``face_recognition==1.3.0`` sdist: Obama ×5 (two of them partial faces) and Biden;
* ``insightface==2.1`` wheel: Tom Hanks (a 112×112 aligned crop) and ``t1.jpg`` (6 people);
* ``skimage.data.astronaut()`` (Eileen Collins), bundled in scikit-image, only when it is installed.

Only the image files are extracted; the archives are deleted. Cache: ``~/.cache/mfsbench/face-assets``
or ``$MFSBENCH_ASSET_CACHE``. When the index cannot be reached, the fixture **skips** with the pip
error rather than passing on fake data, except under ``make test`` and CI (``MFSBENCH_REQUIRE_FACE_ASSETS=1``
or ``CI`` set), where a missing photo **fails**: a suite whose face tests all skipped must not pass.

Use from a test module with ``from tests.face_assets import face_photos_fixture  # noqa: F401``;
pytest then provides it to any test taking a ``face_photos`` argument.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mfsbench.quality.face_photos import FacePhoto, cache_dir, fetch_face_photos  # noqa: F401


@pytest.fixture(scope="session", name="face_photos")
def face_photos_fixture() -> dict[str, FacePhoto]:
    """Name → :class:`FacePhoto`; skips (with the reason) when the photos cannot be fetched."""
    return load_face_photos()


def load_face_photos(required: bool | None = None) -> dict[str, FacePhoto]:
    """The photos, or a skip — a failure when ``required`` (default: under make test or CI)."""
    if required is None:
        required = bool(os.environ.get("MFSBENCH_REQUIRE_FACE_ASSETS") or os.environ.get("CI"))
    if required:
        import cv2  # noqa: F401 - make test installs every extra: a missing OpenCV is a failure there
    else:
        pytest.importorskip("cv2", reason="the face photos are read with OpenCV (opencv-python-headless<5)")
    try:
        return fetch_face_photos()
    except (RuntimeError, OSError) as exc:
        message = f"real face photos unavailable (needs the package index once): {exc}"
        if required:
            pytest.fail(message + " — required under make test / CI (MFSBENCH_REQUIRE_FACE_ASSETS)")
        pytest.skip(message)


def make_video(photo: Path, out: Path, seconds: float = 2.0, fps: int = 25,
               size: tuple[int, int] = (640, 480)) -> Path:
    """Write a short mp4 of ``photo`` drifting and zooming slightly, like a hand-held shot.

    The photo is fitted into ``size`` (width, height) and moved by a few pixels per frame, so a
    video pipeline sees a face that moves but never leaves the frame.

    Raises:
        RuntimeError: when OpenCV cannot open an mp4 writer or read the photo.
    """
    import cv2

    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"cannot read {photo}")
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0]) * 0.9
    frames = max(1, round(seconds * fps))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4 to {out}")
    try:
        for i in range(frames):
            phase = 2 * np.pi * i / frames
            zoom = scale * (1.0 + 0.03 * np.sin(phase))
            dx, dy = 12 * np.sin(phase), 8 * np.sin(2 * phase)
            matrix = np.array([
                [zoom, 0.0, (width - zoom * image.shape[1]) / 2 + dx],
                [0.0, zoom, (height - zoom * image.shape[0]) / 2 + dy],
            ])
            writer.write(cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE))
    finally:
        writer.release()
    return out
