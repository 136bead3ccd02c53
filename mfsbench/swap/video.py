"""Reading and writing images and videos, keeping frame count, fps and size, never half-written.

Videos go through PyAV (the ``video`` extra, FFmpeg in its wheel; :mod:`mfsbench.swap.av_io`),
images through OpenCV (the ``faces`` extra). An image is written to a temporary file beside the
target and renamed into place only when complete; a video swap writes a visible ``OUT.partial.EXT``
and renames it (:mod:`mfsbench.swap.video_run`), so neither leaves a truncated file under the
requested name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.align import cv2_module

if TYPE_CHECKING:
    from mfsbench.swap.av_io import EncodeSettings

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v"}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What must survive a swap unchanged."""

    frames: int
    fps: float
    width: int  # as stored (a portrait phone video may be stored sideways: see ``rotation``)
    height: int
    rotation: int = 0  # display rotation, degrees counter-clockwise; frames are swapped upright


def probe_video(path: Path) -> VideoInfo:
    """Open a video, check that a frame decodes, and report its geometry.

    ``frames`` is what the container announces (its frame count, else duration × rate; 0 when it
    says neither), so that a run can compare the frames it reads against it.

    Raises:
        BadInputError: missing file, unreadable container, no decodable frame, or no PyAV.
    """
    from mfsbench.swap.av_io import Decoded, demux, open_target

    container, streams = open_target(path)
    decoded = Decoded()
    try:
        streams.others = []
        first = next((bgr for bgr, _pts, _packet in demux(container, streams, decoded) if bgr is not None),
                     None)
    finally:
        container.close()
    if first is None:
        raise BadInputError(f"no decodable frame in {path}; is it a valid, non-empty video?")
    return VideoInfo(streams.expected_frames, streams.fps, first.shape[1], first.shape[0], decoded.rotation)


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """Yield BGR ``uint8`` frames until the decoder stops (a cut-off file just ends early)."""
    from mfsbench.swap.av_io import Decoded, demux, open_target

    container, streams = open_target(path)
    streams.others = []
    try:
        for bgr, _pts, _packet in demux(container, streams, Decoded()):
            yield bgr
    finally:
        container.close()


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
    """A video stream alone at the source's fps and size, H.264 by default (for benchmarks and tools
    that have frames but no source container; a swap uses :class:`~mfsbench.swap.av_io.VideoOutput`
    directly to keep the target's timestamps and audio)."""

    def __init__(self, path: Path, info: VideoInfo, settings: EncodeSettings | None = None) -> None:
        from mfsbench.swap.av_io import EncodeSettings, VideoOutput

        self._output = VideoOutput(path, settings or EncodeSettings(), width=info.width, height=info.height,
                                   fps=info.fps)
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        self._output.write(frame, self.frames)
        self.frames += 1

    def close(self) -> None:
        self._output.close()


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
