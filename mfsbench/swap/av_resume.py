"""``--resume`` without a second generation loss: the partial file's video packets, copied as they are.

An interrupted swap's ``OUT.partial.EXT`` holds frames encoded with the same encoder and settings the
resumed run uses; decoding and re-encoding them would cost a second round of compression loss and
the time of an encode. When the partial file's video stream is interchangeable with what the new
encoder writes (same codec, size, pixel format and codec headers — checked by encoding a few frames
into memory and comparing what the muxer stores), its packets are muxed into the new output whole
GOP by whole GOP; the new encoder then starts with a keyframe. A GOP cut off at the end (a fragment
half-written when the process was killed) is dropped. Anything else falls back to re-encoding.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.swap.av_io import VideoOutput, av_module


def _stream_signature(container: Any) -> tuple[object, ...]:
    context = container.streams.video[0].codec_context
    return context.name, context.width, context.height, context.pix_fmt, bytes(context.extradata or b"")


def packets_fit(partial: Path, output: VideoOutput) -> Fraction | None:
    """Whether ``partial``'s video packets can go into ``output`` unchanged: None when not, else the
    new encoder's decode delay in seconds (how far its first decode time precedes its first frame)."""
    av = av_module()
    buffer = io.BytesIO()
    probe = VideoOutput(output.path, output.settings, sink=buffer, **output.geometry)
    delay, rng = Fraction(0), np.random.default_rng(0)  # noise: frames the encoder codes with B-frames
    shape = (output.stream.height, output.stream.width, 3)
    try:
        frames = [probe.to_frame(av.VideoFrame.from_ndarray(rng.integers(0, 255, shape, dtype=np.uint8),
                                                            format="bgr24")) for _ in range(PROBE_FRAMES)]
        frame_time = 1 / Fraction(output.geometry["fps"]).limit_denominator(100_000)
        for index, frame in enumerate(frames):
            frame.pts, frame.time_base = index, frame_time
        for frame in [*frames, None]:  # None: flush, the packets come late (look-ahead)
            for packet in probe.stream.encode(frame):
                if packet.dts is not None and packet.pts is not None and packet.time_base:
                    delay = max(delay, Fraction(packet.pts - packet.dts) * packet.time_base)
                probe.container.mux(packet)
    finally:
        probe.close()
    buffer.seek(0)
    try:
        with av.open(buffer) as fresh, av.open(str(partial)) as kept:
            if not kept.streams.video or _stream_signature(fresh) != _stream_signature(kept):
                return None
            return delay
    except av.FFmpegError:
        return None


PROBE_FRAMES = 8  # enough for x264/x265 to show their B-frame delay


def copy_gops(partial: Path, output: VideoOutput, delay: Fraction) -> int:
    """Mux ``partial``'s complete GOPs into ``output``; returns how many frames (packets) that was.

    Only whole GOPs go in: a GOP is written when the next keyframe (or a clean end) shows it ended,
    so a GOP whose tail a SIGKILL cut off, or a damaged packet, ends the copy before that GOP. The
    last two GOPs are held back so their decode times can be fitted before the new encoder's
    (:func:`_fit_tail`).
    """
    av = av_module()
    copied, held, gop = 0, [], []
    with av.open(str(partial)) as kept:
        video = kept.streams.video[0]
        to_annexb = _annexb_filter(av, video)
        complete = True
        try:
            for packet in kept.demux(video):
                if packet.dts is None:
                    continue  # the demuxer's end-of-stream marker
                if packet.is_corrupt:
                    complete = False
                    break
                if packet.is_keyframe and gop:
                    held.append(gop)
                    gop = []
                    if len(held) > 2:
                        copied += _mux_all(held.pop(0), output)
                gop.extend(to_annexb.filter(packet) if to_annexb is not None else [packet])
        except av.FFmpegError:
            complete = False
        if complete and gop:
            held.append(gop)
        tail = [packet for kept_gop in held for packet in kept_gop]
        if tail:
            _fit_tail(tail, delay, _frame_step(video))
        return copied + _mux_all(tail, output)


def _frame_step(video: Any) -> Fraction:
    rate = video.guessed_rate or video.average_rate or Fraction(25)
    return 1 / Fraction(rate)


def _fit_tail(tail: list[Any], delay: Fraction, step: Fraction) -> None:
    """Lower the last copied decode times (never raise, never reorder) below the new encoder's first.

    The new session's first decode time is its first frame's time minus its B-frame delay, and a
    session cut short (e.g. by Ctrl-C after one frame) ends with decode time = presentation time,
    which can be later; a muxer refuses decode times that go back. Only a few packets move, by a
    few ticks; presentation times and the frames are unchanged.
    """
    time_base = tail[-1].time_base
    next_frame = max(Fraction(p.pts) * p.time_base for p in tail) + step
    limit = math.ceil((next_frame - delay) / time_base) - 1
    for packet in reversed(tail):
        if packet.dts <= limit:
            break
        packet.dts = limit
        limit -= 1


def _annexb_filter(av: Any, video: Any) -> Any:
    """H.264/HEVC packets as an encoder emits them (start codes), for the muxer to convert once.

    The container stores length-prefixed NAL units; a muxer fed by an encoder converts start-code
    packets itself, so copied packets must come in start-code form too (else it converts twice).
    """
    name = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}.get(video.codec_context.name)
    extradata = bytes(video.codec_context.extradata or b"")
    if name is None or not extradata or extradata[:1] != b"\x01":
        return None  # not length-prefixed: nothing to convert
    return av.bitstream.BitStreamFilterContext(name, video)


def _mux_all(packets: list[Any], output: VideoOutput) -> int:
    for packet in packets:
        output.mux_video(packet)
    return len(packets)
