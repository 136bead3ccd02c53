"""Reading and writing images and videos, keeping frame count, fps and size, never half-written.

Everything goes through OpenCV (the ``faces`` extra's ``opencv-python-headless``), which decodes
mp4/avi/mov without a system ffmpeg. Outputs are written to a temporary file beside the target and
renamed into place only when complete, so an interrupted or failed run never leaves a truncated
video or image under the requested name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.align import cv2_module

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v"}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What must survive a swap unchanged."""

    frames: int
    fps: float
    width: int
    height: int


def probe_video(path: Path) -> VideoInfo:
    """Open a video, check that a frame decodes, and report its geometry.

    Raises:
        BadInputError: missing file, unreadable container or no decodable frame.
    """
    cv2 = cv2_module()
    if not path.is_file():
        raise BadInputError(f"video not found: {path}; check the path")
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok or frame is None:
            raise BadInputError(f"no decodable frame in {path}; is it a valid, non-empty video?")
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return VideoInfo(frames, float(fps), frame.shape[1], frame.shape[0])
    finally:
        capture.release()


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """Yield BGR frames until the decoder stops."""
    cv2 = cv2_module()
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def partial_path(path: Path) -> Path:
    """Where an interrupted output is kept: ``out.mp4`` → ``out.partial.mp4`` (never ``out.mp4``)."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


@contextmanager
def atomic_output(path: Path, *, keep_partial: Callable[[], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``path`` on success only.

    On Ctrl-C, when ``keep_partial()`` says what was written is worth keeping, it moves to
    :func:`partial_path` instead of being deleted (an hour of swapped frames is a result too), so
    ``path`` itself only ever holds a whole output; an earlier partial file is replaced only then.
    The caller closes its writer inside the block, so the kept file is finalised and playable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.replace(temp, path)
    except KeyboardInterrupt:
        if keep_partial is not None and keep_partial():
            os.replace(temp, partial_path(path))
        raise
    finally:
        if temp.exists():
            temp.unlink()


class VideoWriter:
    """An mp4v/MJPG writer at the source's fps and size (codec chosen by the suffix)."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        cv2 = cv2_module()
        codec = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
        self._writer = cv2.VideoWriter(
            str(path), cv2.VideoWriter_fourcc(*codec), info.fps, (info.width, info.height)
        )
        if not self._writer.isOpened():
            raise BadInputError(f"cannot write a video at {path}; use an .mp4 or .avi path you can write")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        self._writer.release()


def write_image(path: Path, image: np.ndarray) -> None:
    """Write an image atomically, with the alpha channel and 16-bit depth of a :class:`Photo` read by
    :func:`~mfsbench.faces.detectors.read_image` (one warning line per thing the format cannot keep).

    Raises:
        BadInputError: when the suffix names no image format OpenCV can encode.
    """
    import sys

    from mfsbench.faces.detectors import photo_for_file

    cv2 = cv2_module()
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise BadInputError(f"--out {path} has no image suffix; use .png or .jpg")
    pixels, warnings = photo_for_file(image, path.suffix)  # the input's alpha and 16 bits, kept
    for warning in warnings:
        sys.stderr.write(f"WARNING: {path.name}: {warning}\n")
    with atomic_output(path) as temp:
        if not cv2.imwrite(str(temp), pixels):
            raise BadInputError(f"cannot write image {path}; check the directory and suffix")
