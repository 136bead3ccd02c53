"""Short synthetic clips with an audio track, written through PyAV, for tests and benchmarks.

A swap must keep what the user's video had — audio, timestamps, odd frame sizes — and checking that
needs inputs that have them; OpenCV (what :func:`tests.face_assets.make_video` uses) writes neither
audio nor odd sizes. The audio is a sine tone, so its duration and packets can be compared exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.swap.av_io import FORMATS, av_module


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: float, *, audio_seconds: float = 0.0,
               codec: str = "libx264", pix_fmt: str | None = None, faststart: bool = False,
               rotation: int = 0, colour: dict[str, int] | None = None, crf: int | None = None) -> Path:
    """Encode BGR ``frames`` at ``fps`` (plus ``audio_seconds`` of a 440 Hz AAC tone) into ``path``.

    ``pix_fmt`` defaults to yuv420p at even sizes and yuv444p at odd ones; ``faststart`` puts the
    MP4 index first (a file cut short then still opens: how truncated downloads look). ``rotation``
    stores a display rotation (degrees counter-clockwise), as phones do for portrait video: the
    frames are written as given, so pass them turned the other way. ``colour`` tags the stream
    (e.g. ``{"colorspace": 1, "color_range": 2}``: BT.709, full range) and converts with those.
    """
    av = av_module()
    options = {"movflags": "faststart"} if faststart else {}
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), "w", format=FORMATS[path.suffix.lower()], options=options) as out:
        video = out.add_stream(codec, rate=rate)
        audio = out.add_stream("aac", rate=48_000) if audio_seconds > 0 else None
        if audio is not None:
            audio.layout = "mono"
        started = False
        for index, bgr in enumerate(frames):
            if not started:
                video.height, video.width = bgr.shape[:2]
                odd = bgr.shape[0] % 2 or bgr.shape[1] % 2
                video.pix_fmt = pix_fmt or ("yuv444p" if odd else "yuv420p")
                for name, value in (colour or {}).items():
                    setattr(video.codec_context, name, value)
                if crf is not None:
                    video.options = {"crf": str(crf)}
                if rotation:
                    video.set_display_rotation(rotation)
                started = True
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
            frame = frame.reformat(format=video.pix_fmt, dst_colorspace=(colour or {}).get("colorspace"),
                                   dst_color_range=(colour or {}).get("color_range"))
            frame.pts, frame.time_base = index, 1 / rate
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            _write_tone(av, out, audio, audio_seconds)
    return path


def _write_tone(av: Any, out: Any, audio: Any, seconds: float) -> None:
    samples, block = round(48_000 * seconds), 1024
    for start in range(0, samples, block):
        t = (np.arange(start, min(start + block, samples)) / 48_000).astype(np.float32)
        frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t))[None], format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = 48_000, start
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode(None):
        out.mux(packet)
