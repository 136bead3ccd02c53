"""The video half of ``mfsbench swap``: every frame of a target through a pipeline into an output.

Kept apart from the CLI so that the output options (``--codec``, ``--crf``, ``--preset``), resuming
and interruption live in one place beside the readers and writers of :mod:`mfsbench.swap.video`.

What the user had is kept: the target's timestamps, frame size (odd sizes too) and every audio,
subtitle and data stream the output container can hold (copied, not re-encoded). Swapped frames are
encoded with ``--codec`` (H.264 at CRF 18 by default); a video in which no frame was swapped comes
back as a stream copy of the target (bit-exact, same size). The output is written under the visible
name ``OUT.partial.EXT`` (fragmented MP4/MOV, playable up to its last fragment even after SIGKILL)
and renamed to ``OUT`` when complete; SIGTERM is handled like Ctrl-C (exit 143 instead of 130).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfsbench.errors import BadInputError

if TYPE_CHECKING:
    from mfsbench.swap.av_io import EncodeSettings
    from mfsbench.swap.pipeline import SwapPipeline
    from mfsbench.swap.video import VideoInfo

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
COMMON_CODECS = ("libx264", "libx265", "ffv1", "mpeg4", "libvpx-vp9", "libsvtav1")
CRF_RANGE = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libaom-av1": 63, "libsvtav1": 63}


@dataclass(frozen=True)
class OutputOptions:
    """How the output video is encoded (filled from the CLI by :func:`output_options`)."""

    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"

    def settings(self) -> EncodeSettings:
        from mfsbench.swap.av_io import EncodeSettings

        return EncodeSettings(self.codec, self.crf, self.preset)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Declare the video output options on ``mfsbench swap``."""
    parser.add_argument("--codec", default="libx264",
                        help="video encoder for swapped frames (default libx264 = H.264; e.g. libx265, "
                             "ffv1 for lossless in .mkv, mpeg4); a video with no swapped frame is "
                             "stream-copied instead, bit-exact")
    parser.add_argument("--crf", type=int, default=18,
                        help="constant quality for libx264/libx265 (0-51) and VP9/AV1 (0-63); lower is "
                             "better and larger (default 18, visually lossless)")
    parser.add_argument("--preset", default="veryfast", choices=PRESETS,
                        help="libx264/libx265 speed preset (default veryfast: fast enough not to slow "
                             "the swap)")


def output_options(args: argparse.Namespace) -> OutputOptions:
    """Check ``--codec`` against the encoders this FFmpeg build has, and ``--crf`` against its range.

    Raises:
        BadInputError: unknown codec (the choices listed), CRF out of range, or PyAV missing.
    """
    from mfsbench.swap.av_io import video_codecs

    codecs = video_codecs()
    if args.codec not in codecs:
        preferred = [c for c in COMMON_CODECS if c in codecs]
        others = ", ".join(c for c in codecs if c not in preferred)
        raise BadInputError(f"--codec {args.codec!r} is not a video encoder of this FFmpeg build; choose "
                            f"{', '.join(preferred)} (or another of: {others})")
    top = CRF_RANGE.get(args.codec)
    if top is not None and not 0 <= args.crf <= top:
        raise BadInputError(f"--crf {args.crf} is outside 0-{top} for {args.codec}; 18 is visually lossless")
    return OutputOptions(args.codec, args.crf, args.preset)


def _progress(done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    total_text = str(total) if total > 0 else "?"
    sys.stderr.write(f"\rframe {done}/{total_text}  {rate:5.1f} fps")
    sys.stderr.flush()


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the interruption Ctrl-C already is (partial file and record kept)."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` (once; a second one is ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum: int, frame: Any) -> None:
        if not fired:
            fired.append(signum)
            raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class VideoSwap:
    """What one run of :func:`swap_video` did."""

    frames: int = 0  # frames in the output (copied + swapped)
    copied: int = 0  # frames taken over from the interrupted run's partial file
    copy_s: float = 0.0
    path: Path | None = None  # where they are (None: interrupted before any frame, nothing kept)
    interrupted: bool = False
    signal: str | None = None  # "SIGINT" or "SIGTERM" when interrupted
    frames_read: int = 0  # target frames decoded (before an interruption: so far)
    frames_expected: int = 0  # what the target's container announces (0: it does not say)
    truncated: str | None = None  # why fewer frames were read than announced (None: all were)
    stream_copy: bool = False  # no frame swapped: the output is the target's video stream, copied

    encoding: dict[str, object] | None = None  # codec, crf, preset of the re-encoded frames
    resumed_by: str | None = None  # how the partial file's frames came over: "packet copy" or "re-encode"

    def record_info(self) -> dict[str, object]:
        """What the record keeps about the output beyond frame counts: how it was made, what was short."""
        return {"frames_read": self.frames_read, "frames_expected": self.frames_expected,
                "truncated": self.truncated, "stream_copy": self.stream_copy,
                "encoding": None if self.stream_copy else self.encoding, "interrupted_by": self.signal,
                "resumed_by": self.resumed_by}

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal number, as a shell reports a process that signal ended."""
        if not self.interrupted:
            return 0
        return 143 if self.signal == "SIGTERM" else 130


def working_paths(out: Path) -> tuple[Path, Path]:
    """The two visible names an unfinished output can have: ``OUT.partial.EXT`` and, while a resume
    reads that one, ``OUT.partial.new.EXT`` (after a SIGKILL both can exist; the longer one resumes)."""
    from mfsbench.swap.video import partial_path

    partial = partial_path(out)
    return partial, partial.with_name(f"{out.stem}.partial.new{out.suffix}")


def _count_frames(path: Path) -> int:
    """Decodable frames in a partial file (0 when it cannot be read at all)."""
    from mfsbench.swap.video import iter_frames

    try:
        return sum(1 for _ in iter_frames(path))
    except BadInputError:
        return 0


def resumable_partial(target: Path, out: Path, info: VideoInfo) -> Path:
    """The partial file ``--resume`` continues, checked to be a swap of this target.

    Of ``OUT.partial.EXT`` and ``OUT.partial.new.EXT`` (both exist only after a SIGKILL during a
    resume), the one with more frames is taken.

    Raises:
        BadInputError: there is none, or its size or frame rate is not the target's.
    """
    from mfsbench.swap.video import probe_video

    candidates = [p for p in working_paths(out) if p.is_file()]
    if not candidates:
        raise BadInputError(f"nothing to resume: no {working_paths(out)[0]} (an interrupted swap keeps one); "
                            "run without --resume")
    partial = max(candidates, key=_count_frames) if len(candidates) > 1 else candidates[0]
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


def _copy_partial(resume_from: Path, output: Any, done: VideoSwap) -> None:
    """Put the partial file's frames into ``output``: its packets as they are when the new encoder
    writes the same stream (:mod:`~mfsbench.swap.av_resume`), else decoded and re-encoded at their
    own timestamps (another codec or --crf than the interrupted run's, or an OpenCV-written file)."""
    from mfsbench.swap.av_io import Decoded, demux, open_target
    from mfsbench.swap.av_resume import copy_gops, packets_fit

    delay = packets_fit(resume_from, output)
    if delay is not None:
        done.copied = done.frames = copy_gops(resume_from, output, delay)
        done.resumed_by = "packet copy"
        return
    done.resumed_by = "re-encode"
    container, streams = open_target(resume_from)
    streams.others = []
    scale = Fraction(streams.video.time_base or 1) / Fraction(output.time_base)
    try:
        for bgr, pts, _packet in demux(container, streams, Decoded()):
            output.write(bgr, round(pts * scale))
            done.copied = done.frames = done.frames + 1
    finally:
        container.close()


def swap_video(pipeline: SwapPipeline, target: Path, out: Path, info: VideoInfo, started: float, *,
               resume_from: Path | None = None, options: OutputOptions | None = None) -> VideoSwap:
    """Swap every frame of ``target`` into ``out`` (after ``resume_from``'s frames, when given).

    Ctrl-C and SIGTERM are caught here, not re-raised: the frames written so far are kept at
    ``partial_path(out)`` (none written: nothing is kept, the path is None, and an older partial file
    stays as it was) and the caller still prints and records what was measured. A resume replaces the
    partial file only once it holds more frames than before, and removes it when complete.
    """
    from mfsbench.swap.av_io import Decoded, VideoOutput, can_remux, open_target, remux

    settings = (options or OutputOptions()).settings()
    done = VideoSwap(frames_expected=info.frames, encoding=vars(settings))
    partial, spare = working_paths(out)
    if resume_from is not None:
        working = spare if resume_from == partial else partial
    else:
        working = spare if partial.exists() else partial
    out.parent.mkdir(parents=True, exist_ok=True)
    decoded = Decoded()
    try:
        with _sigterm_as_interrupt():
            container, streams = open_target(target)
            try:
                streams.width, streams.height = info.width, info.height
                output = VideoOutput(working, settings, width=info.width, height=info.height,
                                     fps=streams.fps, time_base=streams.video.time_base, source=streams.video,
                                     others=tuple(streams.others), rotation=info.rotation,
                                     background=True)
                try:
                    _fill(output, pipeline, (container, streams), decoded=decoded, done=done,
                          resume_from=resume_from, started=started, rotation=info.rotation)
                finally:
                    output.close()
            finally:
                container.close()
            sys.stderr.write("\n")
            done.frames_read = decoded.frames
            if done.frames == 0:
                working.unlink(missing_ok=True)
                raise BadInputError(f"no decodable frame in {target}")
            _report_truncation(target, decoded, done)
            if resume_from is None and pipeline.frames_swapped == 0 and can_remux(target, out):
                working.unlink()  # nothing swapped: the target's own packets beat any re-encode
                remux(target, working)
                done.stream_copy = True
            os.replace(working, out)
    except KeyboardInterrupt as exc:
        return _interrupted(exc, done, out, working, resume_from)
    except BaseException:
        working.unlink(missing_ok=True)
        raise
    for leftover in working_paths(out):
        if resume_from is not None or leftover != partial:
            leftover.unlink(missing_ok=True)
    done.path = out
    return done


def _fill(output: Any, pipeline: SwapPipeline, source: tuple[Any, Any], *, decoded: Any, done: VideoSwap,
          resume_from: Path | None, started: float, rotation: int = 0) -> None:
    """The resumed frames (when resuming), then each new target frame swapped, other packets copied.

    A frame is swapped upright (as a player shows it: a portrait phone video is stored sideways and
    the detector finds no sideways face) and stored back as the target stores it, with its rotation.
    """
    from mfsbench.swap.av_io import demux, stored, upright

    if resume_from is not None:
        copy_started = time.perf_counter()
        _copy_partial(resume_from, output, done)
        done.copy_s = time.perf_counter() - copy_started
    for bgr, pts, packet in demux(*source, decoded):
        done.frames_read = decoded.frames
        if packet is not None:
            output.copy(packet)
        elif decoded.frames > done.copied:  # else: decoded only to reach the first frame still missing
            output.write(stored(pipeline.swap_frame(upright(bgr, rotation)), rotation), pts)
            done.frames += 1
            _progress(done.frames, done.frames_expected, started)


def _report_truncation(target: Path, decoded: Any, done: VideoSwap) -> None:
    """One warning line (and the record's ``truncated``) when fewer frames decode than announced."""
    short = done.frames_expected and decoded.frames < done.frames_expected
    if not short and decoded.error is None:
        return
    expected = f"{done.frames_expected}" if done.frames_expected else "an unknown number of"
    reason = f" ({decoded.error})" if decoded.error else ""
    done.truncated = (f"read {decoded.frames} of {expected} frame(s) the container announces{reason}; "
                      "the target looks truncated or damaged")
    sys.stderr.write(f"WARNING: {target}: {done.truncated}; the output has those {decoded.frames} frame(s)\n")


def _interrupted(exc: KeyboardInterrupt, done: VideoSwap, out: Path, working: Path,
                 resume_from: Path | None) -> VideoSwap:
    """Keep what is worth keeping under ``OUT.partial.EXT`` and say so; never a shorter partial file."""
    partial = working_paths(out)[0]
    done.interrupted = True
    done.signal = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
    new_frames = done.frames - done.copied
    if new_frames > 0 and working.is_file():
        os.replace(working, partial)
        if resume_from is not None and resume_from != partial:
            resume_from.unlink(missing_ok=True)
    else:
        working.unlink(missing_ok=True)
    if resume_from is not None and new_frames <= 0:
        done.frames = done.copied = 0  # nothing new: the partial file is as it was
        kept = resume_from if resume_from.is_file() else None
        done.path = kept
        sys.stderr.write(f"\nmfsbench swap: interrupted ({done.signal}) before a new frame; "
                         f"{kept} is unchanged\n")
        return done
    done.path = partial if new_frames > 0 else None
    sys.stderr.write(f"\nmfsbench swap: interrupted after {done.frames} of {done.frames_expected} frame(s)"
                     + (f"; they are in {done.path}" if done.path else "") + "\n")
    return done
