"""``--resume`` without a second generation loss: the partial file's video packets, copied as they are.

An interrupted swap's ``OUT.partial.EXT`` holds frames encoded with the same encoder and settings the
resumed run uses; decoding and re-encoding them would cost a second round of compression loss and
the time of an encode. When the partial file's video stream is interchangeable with what the new
encoder writes (same codec, size, pixel format and codec headers — checked by encoding one frame
into memory and comparing what the muxer stores), its packets are muxed into the new output whole
GOP by whole GOP; the new encoder then starts with a keyframe. A GOP cut off at the end (a fragment
half-written when the process was killed) is dropped. Anything else falls back to re-encoding.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.swap.av_io import VideoOutput, av_module


def _stream_signature(container: Any) -> tuple[object, ...]:
    context = container.streams.video[0].codec_context
    return context.name, context.width, context.height, context.pix_fmt, bytes(context.extradata or b"")


def packets_fit(partial: Path, output: VideoOutput) -> bool:
    """Whether ``partial``'s video packets can go into ``output`` unchanged."""
    av = av_module()
    buffer = io.BytesIO()
    probe = VideoOutput(output.path, output.settings, sink=buffer, **output.geometry)
    try:
        probe.write(np.zeros((output.stream.height, output.stream.width, 3), np.uint8), 0)
    finally:
        probe.close()
    buffer.seek(0)
    try:
        with av.open(buffer) as fresh, av.open(str(partial)) as kept:
            return bool(kept.streams.video) and _stream_signature(fresh) == _stream_signature(kept)
    except av.FFmpegError:
        return False


def copy_gops(partial: Path, output: VideoOutput) -> int:
    """Mux ``partial``'s complete GOPs into ``output``; returns how many frames (packets) that was.

    Only whole GOPs go in: a GOP is written when the next keyframe (or a clean end) shows it ended,
    so a GOP whose tail a SIGKILL cut off, or a damaged packet, ends the copy before that GOP.
    """
    av = av_module()
    copied, gop = 0, []
    with av.open(str(partial)) as kept:
        video = kept.streams.video[0]
        to_annexb = _annexb_filter(av, video)
        try:
            for packet in kept.demux(video):
                if packet.dts is None:
                    continue  # the demuxer's end-of-stream marker
                if packet.is_corrupt:
                    return copied
                if packet.is_keyframe and gop:
                    copied += _mux_all(gop, output)
                    gop = []
                gop.extend(to_annexb.filter(packet) if to_annexb is not None else [packet])
        except av.FFmpegError:
            return copied
    return copied + _mux_all(gop, output)


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
