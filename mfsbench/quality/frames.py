"""Frame counting, even sampling and decoding of FF++ videos, with one clear error per bad file.

A 1000-video run must not stop at one zero-byte or corrupt download: every failure here raises
:class:`VideoError` (a :class:`~mfsbench.errors.BadInputError` naming the file and the fix), which the
runner records against that video and moves on. Frames are read sequentially with ``grab`` and only
the wanted ones decoded, because seeking in h264 is frame-inexact in OpenCV.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.align import cv2_module

FIX = "re-download or re-encode it (FaceForensics' download script)"


class VideoError(BadInputError):
    """A video that cannot be decoded: counted and named by the runner, not fatal for the run."""


def _open(path: Path) -> Any:
    cv2 = cv2_module()
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video not found; check --root or {FIX}")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: zero-byte video; {FIX}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoError(f"{path}: not a readable video (corrupt or unknown codec); {FIX}")
    return capture


def video_frame_count(path: Path) -> int:
    """Number of frames, from the container when it says, else by decoding to the end.

    The first frame is always decoded, so a file whose header opens but whose stream is broken
    fails here rather than silently giving no frames later.

    Raises:
        VideoError: missing, zero-byte, corrupt, or no decodable frame.
    """
    cv2 = cv2_module()
    capture = _open(path)
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, _ = capture.read()
        if not ok:
            raise VideoError(f"{path}: no decodable frame (corrupt stream); {FIX}")
        if count <= 0:  # some containers do not store it: count by grabbing
            count = 1
            while capture.grab():
                count += 1
        return count
    finally:
        capture.release()


def sample_indices(n_frames: int, k: int) -> list[int]:
    """``k`` evenly spaced frame indices: the centre of each of ``k`` equal bins of ``range(n_frames)``.

    Bin centres (rather than ``linspace(0, n-1)``) leave frames after every sample, so the no-face
    rule can substitute a later frame and a held-out gallery frame exists between samples.
    Fewer than ``k`` frames gives every frame once.
    """
    if n_frames <= 0 or k <= 0:
        return []
    if k >= n_frames:
        return list(range(n_frames))
    return [int((2 * i + 1) * n_frames // (2 * k)) for i in range(k)]


def read_frames(path: Path, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, BGR uint8 frame)`` for each wanted index, in ascending order.

    Indices past the decodable end are simply not yielded (the caller sees which are missing).

    Raises:
        VideoError: the file cannot be opened at all.
    """
    wanted = sorted({int(i) for i in indices if int(i) >= 0})
    if not wanted:
        return
    capture = _open(path)
    try:
        position, last = 0, wanted[-1]
        targets = set(wanted)
        while position <= last:
            if not capture.grab():
                return
            if position in targets:
                ok, frame = capture.retrieve()
                if ok and frame is not None:
                    yield position, np.ascontiguousarray(frame)
            position += 1
    finally:
        capture.release()


class DecodedFrames:
    """Frames already decoded, kept (read-only) up to a byte budget, oldest evicted first.

    :func:`read_frames` decodes every frame up to the last wanted one, so on a FaceForensics++
    video each read costs about a whole decode. The runner detects faces on a pair's target
    frames and then swaps and evaluates the same frames; this keeps them between the two, so each
    video is decoded once per pair rather than twice. Frames are made read-only: a caller that
    wrote into one would otherwise corrupt it for every later row.
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._frames: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._bytes = 0

    def read(self, path: Path, indices: Sequence[int]) -> tuple[dict[int, np.ndarray], int]:
        """``({index: frame}, number of frames decoded now)`` for the wanted indices that exist.

        Raises:
            VideoError: the file cannot be opened (only when some index had to be decoded).
        """
        key = str(path)
        wanted = sorted({int(i) for i in indices if int(i) >= 0})
        found: dict[int, np.ndarray] = {}
        for index in wanted:
            frame = self._frames.get((key, index))
            if frame is not None:
                self._frames.move_to_end((key, index))
                found[index] = frame
        missing = [i for i in wanted if i not in found]
        decoded = 0
        for index, frame in read_frames(path, missing):
            frame.flags.writeable = False
            found[index] = frame
            decoded += 1
            self._keep((key, index), frame)
        return {i: found[i] for i in sorted(found)}, decoded

    def _keep(self, key: tuple[str, int], frame: np.ndarray) -> None:
        if frame.nbytes > self.max_bytes:
            return
        self._frames[key] = frame
        self._bytes += frame.nbytes
        while self._bytes > self.max_bytes:
            _, evicted = self._frames.popitem(last=False)
            self._bytes -= evicted.nbytes
