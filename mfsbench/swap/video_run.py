"""The video half of ``mfsbench swap``: every frame of a target through a pipeline into an output.

Kept apart from the CLI so that the output options (``--codec``, ``--crf``), resuming and
interruption live in one place beside the readers and writers of :mod:`mfsbench.swap.video`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mfsbench.errors import BadInputError

if TYPE_CHECKING:
    from mfsbench.swap.pipeline import SwapPipeline
    from mfsbench.swap.video import VideoInfo


@dataclass(frozen=True)
class OutputOptions:
    """How the output video is encoded (filled from the CLI by :func:`output_options`)."""


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Declare the video output options on ``mfsbench swap``."""


def output_options(args: argparse.Namespace) -> OutputOptions:
    return OutputOptions()


def _progress(done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    total_text = str(total) if total > 0 else "?"
    sys.stderr.write(f"\rframe {done}/{total_text}  {rate:5.1f} fps")
    sys.stderr.flush()


@dataclass
class VideoSwap:
    """What one run of :func:`swap_video` did."""

    frames: int = 0  # frames in the output (copied + swapped)
    copied: int = 0  # frames taken over from the interrupted run's partial file
    copy_s: float = 0.0
    path: Path | None = None  # where they are (None: interrupted before any frame, nothing kept)
    interrupted: bool = False


def resumable_partial(target: Path, out: Path, info: VideoInfo) -> Path:
    """The partial file ``--resume`` continues, checked to be a swap of this target.

    Raises:
        BadInputError: there is none, or its size or frame rate is not the target's.
    """
    from mfsbench.swap.video import partial_path, probe_video

    partial = partial_path(out)
    if not partial.is_file():
        raise BadInputError(f"nothing to resume: no {partial} (an interrupted swap keeps one); "
                            "run without --resume")
    try:
        kept = probe_video(partial)
    except BadInputError as exc:
        raise BadInputError(f"{exc} (the partial file of an interrupted swap); remove it or run without "
                            "--resume") from None
    if (kept.width, kept.height) != (info.width, info.height) or abs(kept.fps - info.fps) > 1e-3:
        raise BadInputError(f"{partial} ({kept.width}×{kept.height} at {kept.fps:g} fps) is not a swap of "
                            f"{target} ({info.width}×{info.height} at {info.fps:g} fps); remove it or run "
                            "without --resume")
    return partial


def swap_video(pipeline: SwapPipeline, target: Path, out: Path, info: VideoInfo, started: float, *,
               resume_from: Path | None = None, options: OutputOptions | None = None) -> VideoSwap:
    """Swap every frame of ``target`` into ``out`` (after ``resume_from``'s frames, when given).

    Ctrl-C is caught here, not re-raised: the frames written so far are kept at ``partial_path(out)``
    (none written: nothing is kept, the path is None, and an older partial file stays as it was) and
    the caller still prints and records what was measured. A resume replaces the partial file only
    once it holds more frames than before, and removes it when complete.
    """
    from mfsbench.swap.video import VideoWriter, atomic_output, iter_frames, partial_path

    done = VideoSwap()
    copying = resume_from is not None

    def worth_keeping() -> bool:  # never trade a partial file for a shorter one
        return not copying and done.frames > done.copied

    try:
        with atomic_output(out, keep_partial=worth_keeping) as temp:
            writer = VideoWriter(temp, info)
            try:
                if resume_from is not None:
                    copy_started = time.perf_counter()
                    for frame in iter_frames(resume_from):
                        writer.write(frame)
                        done.copied = done.frames = done.frames + 1
                    done.copy_s = time.perf_counter() - copy_started
                    copying = False
                for index, frame in enumerate(iter_frames(target)):
                    if index < done.copied:
                        continue  # decoded only to reach the first frame the partial file lacks
                    writer.write(pipeline.swap_frame(frame))
                    done.frames += 1
                    _progress(done.frames, info.frames, started)
            finally:
                writer.close()
            sys.stderr.write("\n")
            if done.frames == 0:
                raise BadInputError(f"no decodable frame in {target}")
    except KeyboardInterrupt:
        done.interrupted = True
        kept = partial_path(out)
        if resume_from is not None and done.frames <= done.copied:
            done.frames = done.copied = 0  # nothing new: the partial file is as it was
            done.path = kept if kept.is_file() else None
            sys.stderr.write(f"\nmfsbench swap: interrupted before a new frame; {kept} is unchanged\n")
            return done
        done.path = kept if done.frames else None
        sys.stderr.write(f"\nmfsbench swap: interrupted after {done.frames} of {info.frames} frame(s)"
                         + (f"; they are in {done.path}" if done.path else "") + "\n")
        return done
    if resume_from is not None:
        resume_from.unlink(missing_ok=True)
    done.path = out
    return done
