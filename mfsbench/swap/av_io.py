"""Video containers through PyAV (FFmpeg): decode a target, re-encode swapped frames, copy the rest.

Why PyAV and not OpenCV's ``VideoWriter``: OpenCV can only write a video stream (audio, subtitles and
data are lost), only MPEG-4 Part 2 in its wheel, and only even frame sizes; it knows no timestamps.
Here the target is demuxed once: video packets are decoded to BGR ``uint8`` frames for the pipeline
and their timestamps reused for the encoded output; every other stream the output container can
hold is copied packet by packet (no re-encode). :func:`remux` copies *every* stream, video included,
which is how a video in which nothing was swapped comes back bit-exact.

PyAV is the ``video`` extra; it is imported only here and only when a video is read or written.
"""

from __future__ import annotations

import io
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.errors import BadInputError

DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18
DEFAULT_PRESET = "veryfast"
# codecs whose quality is set by --crf (others ignore it, and saying so beats silently not applying it)
CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"}
# muxer name per output suffix; fragmented MP4/MOV stay playable up to the last fragment after SIGKILL
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
FRAGMENTED = {"mp4", "mov"}
COPIED_TYPES = ("audio", "subtitle", "data")
# a fragment per keyframe; the index (moov) is written with the first fragment (delay_moov), so it
# has edit lists: B-frame reordering and AAC priming keep their timestamps, as in a plain MP4
FRAGMENT_FLAGS = "frag_keyframe+empty_moov+delay_moov+default_base_moof"
#: Frames a background encoder may hold before ``write`` waits (``VideoOutput(background=True)``):
#: enough to absorb one slow frame, few enough that a SIGKILL loses almost nothing more.
ENCODER_QUEUE_FRAMES = 2


def av_module() -> Any:
    """Import PyAV, or say in one line how to install it."""
    try:
        import av
    except ImportError:
        raise BadInputError("video input and output need PyAV: pip install 'mfsbench[video]'") from None
    return av


def video_codecs() -> list[str]:
    """The video encoders this FFmpeg build offers (what ``--codec`` accepts)."""
    av = av_module()
    names = []
    for name in sorted(av.codecs_available):
        try:
            codec = av.Codec(name, "w")
        except Exception:  # a decoder-only name: not an encoder
            continue
        if codec.type == "video" and codec.video_formats:
            names.append(name)
    return names


@dataclass(frozen=True)
class EncodeSettings:
    """How swapped frames are encoded: codec, constant-quality factor and speed preset."""

    codec: str = DEFAULT_CODEC
    crf: int | None = DEFAULT_CRF
    preset: str = DEFAULT_PRESET


@dataclass
class TargetStreams:
    """What a target holds, read from its container before any frame is decoded."""

    video: Any  # av.VideoStream
    others: list[Any]  # audio, subtitle and data streams (copied when the output muxer takes them)
    expected_frames: int  # the container's frame count (or duration × rate), 0 when it says neither
    fps: float
    width: int = 0
    height: int = 0


def open_target(path: Path) -> tuple[Any, TargetStreams]:
    """Open ``path`` for decoding.

    Raises:
        BadInputError: missing file, a container FFmpeg cannot open, or no video stream.
    """
    av = av_module()
    if path.is_dir():
        raise BadInputError(f"{path} is a directory, not a video; pass a video file")
    if not path.is_file():
        raise BadInputError(f"video not found: {path}; check the path")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, ValueError) as exc:
        raise BadInputError(f"no decodable frame in {path} ({exc}); is it a valid, non-empty video?") \
            from None
    if not container.streams.video:
        container.close()
        raise BadInputError(f"no video stream in {path}; is it a video?")
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    # FFmpeg's own guess first: the average over a few frames of a fragmented partial file is skewed
    rate = video.guessed_rate or video.average_rate or video.base_rate or Fraction(25)
    expected = int(video.frames or 0)
    if not expected and video.duration and video.time_base:
        expected = round(float(video.duration * video.time_base * rate))
    if not expected and container.duration:
        expected = round(container.duration / 1_000_000 * float(rate))
    others = [s for s in container.streams if s.index != video.index and s.type in COPIED_TYPES]
    return container, TargetStreams(video, others, expected, float(rate))


@dataclass
class Decoded:
    """Frames read from a target, and why reading stopped early (None: the stream ended)."""

    frames: int = 0
    error: str | None = None
    packets: list[Any] = field(default_factory=list)
    rotation: int = 0  # the display rotation of the first frame, degrees counter-clockwise (phone videos)


def demux(container: Any, streams: TargetStreams, decoded: Decoded) -> Iterator[tuple[np.ndarray, int, Any]]:
    """Yield ``(bgr, pts, None)`` per decoded video frame and ``(None, 0, packet)`` per other packet.

    A corrupt or cut-off packet ends the iteration instead of raising; ``decoded.error`` then says
    what FFmpeg reported, so the caller can report frames read against frames expected.
    """
    av = av_module()
    video = streams.video
    wanted = [video, *streams.others]
    step = _frame_step(video, streams.fps)
    last_pts: int | None = None
    try:
        for packet in container.demux(wanted):
            if packet.is_corrupt:  # cut off (a truncated file): the frame it held is lost
                decoded.error = f"packet {packet.pts} is incomplete"
                continue
            if packet.stream.index != video.index:
                if packet.dts is not None:
                    yield None, 0, packet
                continue
            for frame in packet.decode():
                last_pts = _frame_pts(frame.pts, last_pts, step)
                if not decoded.frames:
                    decoded.rotation = int(frame.rotation or 0)
                decoded.frames += 1
                # the frame's own matrix and range: full-range (phone) video read as limited would clip
                yield frame.to_ndarray(format="bgr24", src_color_range=frame.color_range), last_pts, None
    except (av.FFmpegError, EOFError) as exc:
        decoded.error = str(exc)


def upright(bgr: np.ndarray, rotation: int) -> np.ndarray:
    """A decoded frame turned as a player shows it: ``rotation`` is the stream's display rotation in
    degrees counter-clockwise (a portrait phone video is stored sideways with ±90)."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(bgr, turns)) if turns else bgr


def stored(bgr: np.ndarray, rotation: int) -> np.ndarray:
    """The inverse of :func:`upright`: back to the orientation the stream stores."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(bgr, -turns)) if turns else bgr


#: the colour description copied from the target's video stream onto the output's (0 and 2 are
#: FFmpeg's "unspecified", left alone)
COLOUR_TAGS = ("colorspace", "color_range", "color_primaries", "color_trc")


def colour_tags(source: Any) -> dict[str, int]:
    """The target's specified colour tags (matrix, range, primaries, transfer)."""
    context = getattr(source, "codec_context", None)
    if context is None:
        return {}
    tags = {name: int(getattr(context, name, 0) or 0) for name in COLOUR_TAGS}
    unspecified = {"colorspace": 2, "color_range": 0, "color_primaries": 2, "color_trc": 2}
    return {name: value for name, value in tags.items() if value != unspecified[name]}


def _frame_step(video: Any, fps: float) -> int:
    """One frame's duration in the stream's time base (for frames the container gives no pts)."""
    return max(1, round(1 / (fps * float(video.time_base)))) if video.time_base else 1


def _frame_pts(pts: int | None, last: int | None, step: int) -> int:
    if pts is None or (last is not None and pts <= last):
        return 0 if last is None else last + step
    return pts


def _pixel_format(codec: Any, source_format: str | None, width: int, height: int) -> str:
    """A pixel format the encoder takes that needs no cropping: chroma subsampling only at even sizes.

    FFV1 gets ``bgr0``, so what the pipeline produced is stored losslessly (no YUV round trip).
    """
    formats = [f.name for f in codec.video_formats]
    if codec.name == "ffv1" and "bgr0" in formats:
        return "bgr0"
    odd = width % 2 or height % 2
    subsampled = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "nv12", "nv21", "yuv411p", "yuv410p",
                  "yuv440p", "nv16"}
    candidates = [source_format, "yuv420p"] if not odd else [source_format, "yuv444p", "gbrp"]
    for name in candidates:
        if name and name in formats and not (odd and name in subsampled) and not name.startswith("yuvj"):
            return name
    for name in formats:
        if not (odd and name in subsampled):
            return name
    raise BadInputError(f"--codec {codec.name} cannot encode a {width}×{height} frame (odd sizes need a "
                        "format without chroma subsampling); use --codec libx264 or ffv1")


class VideoOutput:
    """An output container: the target's video re-encoded with the target's timestamps, plus copies.

    Opened on the working file; :meth:`close` flushes the encoder and writes the trailer. MP4 and MOV
    are written fragmented (a fragment per keyframe, a keyframe about every second), so a file cut
    off by SIGKILL still plays and resumes up to its last complete fragment.
    """

    def __init__(self, path: Path, settings: EncodeSettings, *, width: int, height: int, fps: float,
                 time_base: Fraction | None = None, source: Any = None, others: tuple[Any, ...] = (),
                 sink: io.BytesIO | None = None, rotation: int = 0, background: bool = False) -> None:
        """``width``×``height`` is the stored frame size; ``rotation`` the display rotation written
        with it (the target's, so a sideways-stored phone video still plays upright); ``source``, the
        target's video stream, gives the pixel format and colour tags to keep.

        ``background``: colour conversion, encoding and muxing run on one worker thread, in the order
        they were asked for. Why: the swap's detection, tracking and paste-back run on one core, so on
        a 2-core machine the encoder (which releases the GIL) fills the other core instead of adding
        its time to every frame. An error of the worker is raised by the next call, or by
        :meth:`close`, which also waits for every queued frame (Ctrl-C keeps what was written)."""
        av = av_module()
        self.path = path
        self.geometry = {"width": width, "height": height, "fps": fps, "time_base": time_base,
                         "source": source, "rotation": rotation}  # a twin encoder (av_resume.packets_fit)
        self.settings = settings
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise BadInputError(f"--out {path} has no video suffix FFmpeg can write; use "
                                + ", ".join(sorted(FORMATS)))
        rate = Fraction(fps).limit_denominator(100_000)
        self.time_base = time_base or (1 / rate)
        # every packet reaches the file at once: what a SIGKILL leaves is all that was encoded
        options = {"movflags": FRAGMENT_FLAGS, "flush_packets": "1"} if fmt in FRAGMENTED else {}
        self.container = av.open(sink if sink is not None else str(path), "w", format=fmt, options=options)
        try:
            supported = self.container.supported_codecs
            codec = av.Codec(settings.codec, "w")
            if codec.canonical_name not in supported:
                raise BadInputError(f"--codec {settings.codec} cannot be stored in {path.suffix} files; "
                                    "use .mkv (takes any codec) or --codec libx264")
            self.stream = self.container.add_stream(settings.codec, rate=rate)
            self.stream.width, self.stream.height = width, height
            source_format = source.codec_context.pix_fmt if source is not None else None
            self.stream.pix_fmt = _pixel_format(codec, source_format, width, height)
            self.stream.time_base = self.time_base
            self.stream.options = _codec_options(settings, rate)
            # the target's colour description, and frames converted with its matrix and range: an HD
            # BT.709 video converted with the BT.601 default would come back with shifted colours
            self.colour = colour_tags(source)
            for name, value in self.colour.items():
                setattr(self.stream.codec_context, name, value)
            if rotation % 360:
                self.stream.set_display_rotation(rotation)
            self.copies: dict[int, Any] = {}
            for other in others:
                name = other.codec_context.name if other.codec_context is not None else other.type
                if name in supported:
                    self.copies[other.index] = self.container.add_stream_from_template(other)
                else:
                    sys.stderr.write(f"WARNING: {path.suffix} files cannot hold the target's {other.type} "
                                     f"stream #{other.index} ({name}); it is not copied (use .mkv)\n")
            self.frames = 0
        except BaseException:
            self.container.close()
            raise
        self._jobs: queue.Queue[Callable[[], None] | None] | None = None
        self._failure: BaseException | None = None
        self._worker: threading.Thread | None = None
        if background:
            self._jobs = queue.Queue(maxsize=ENCODER_QUEUE_FRAMES)
            self._worker = threading.Thread(target=self._drain, name="mfsbench-encoder", daemon=True)
            self._worker.start()

    def _drain(self) -> None:
        """The background worker: every job in order; after a failure the rest are dropped (the
        caller sees the failure at its next call and stops)."""
        assert self._jobs is not None
        while (job := self._jobs.get()) is not None:
            if self._failure is None:
                try:
                    job()
                except BaseException as exc:  # handed to the caller's thread by _submit/close
                    self._failure = exc

    def _submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` now, or queue it for the background worker (raising a failure it had)."""
        if self._jobs is None:
            job()
            return
        self._raise_failure()
        self._jobs.put(job)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def write(self, bgr: np.ndarray, pts: int) -> None:
        """Encode one BGR frame at the source's ``pts`` (same time base). In the background mode the
        frame is encoded later: the caller must not change ``bgr`` afterwards (the swap never does: each
        frame is a new array)."""
        self._submit(lambda: self._encode(bgr, pts))
        self.frames += 1

    def _encode(self, bgr: np.ndarray, pts: int) -> None:
        av = av_module()
        frame = self.to_frame(av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24"))
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def to_frame(self, frame: Any) -> Any:
        """An RGB/BGR frame in the encoder's pixel format, matrix and range (the target's)."""
        return frame.reformat(format=self.stream.pix_fmt, dst_colorspace=self.colour.get("colorspace"),
                              dst_color_range=self.colour.get("color_range"))

    def mux_video(self, packet: Any) -> None:
        """Mux an already encoded video packet (from an earlier run's output with the same encoder)."""

        def mux() -> None:
            packet.stream = self.stream
            self.container.mux(packet)

        self._submit(mux)
        self.frames += 1

    def copy(self, packet: Any) -> None:
        """Mux a packet of a copied (audio, subtitle, data) stream unchanged (in order with the
        video frames written before it, also in the background mode)."""
        target = self.copies.get(packet.stream.index)
        if target is not None:

            def mux() -> None:
                packet.stream = target
                self.container.mux(packet)

            self._submit(mux)

    def close(self) -> None:
        """Finish every queued frame, flush the encoder, write the trailer; a worker's failure is
        raised (after the container is closed)."""
        if self._worker is not None and self._jobs is not None:
            self._jobs.put(None)
            self._worker.join()
            self._worker = None
            if self._failure is not None:
                self.container.close()
                self._raise_failure()
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        except EOFError:
            pass  # the encoder was flushed already (a probe that read its packets)
        finally:
            self.container.close()


def _codec_options(settings: EncodeSettings, rate: Fraction) -> dict[str, str]:
    """Encoder options: quality, speed, and a keyframe about every second (in MP4/MOV a fragment
    starts at each: that is how much a SIGKILL can cost)."""
    options: dict[str, str] = {}
    if settings.codec in CRF_CODECS and settings.crf is not None:
        options["crf"] = str(settings.crf)
    keyint = max(1, round(float(rate)))
    if settings.codec == "libx264":
        options.update(preset=settings.preset, g=str(keyint))
    elif settings.codec == "libx265":
        options.update(preset=settings.preset, **{"x265-params": f"keyint={keyint}:log-level=error"})
    elif settings.codec == "mpeg4":
        options["qscale"] = "2"  # MPEG-4 Part 2 at its best constant quality (not OpenCV's default)
    return options


def can_remux(source: Path, dest: Path) -> bool:
    """Whether ``dest``'s container can hold ``source``'s video codec as it is (stream copy)."""
    av = av_module()
    fmt = FORMATS.get(dest.suffix.lower())
    if fmt is None:
        return False
    with av.open(str(source)) as reader:
        return bool(reader.streams.video) and reader.streams.video[0].codec_context.name in _supported(fmt)


def remux(source: Path, dest: Path) -> None:
    """Copy every stream of ``source`` that ``dest``'s container can hold, packet by packet, so the
    frames stay bit-exact (check :func:`can_remux` first). MP4/MOV are written fragmented, like
    :class:`VideoOutput`, so an interrupted copy still plays up to its last fragment."""
    av = av_module()
    fmt = FORMATS[dest.suffix.lower()]
    with av.open(str(source)) as reader:
        video = reader.streams.video[0]
        options = {"movflags": FRAGMENT_FLAGS} if fmt in FRAGMENTED else {}
        with av.open(str(dest), "w", format=fmt, options=options) as writer:
            supported = writer.supported_codecs
            mapping = {}
            for stream in reader.streams:
                if stream.type == "video" and stream.index != video.index:
                    continue
                if stream.type in ("video", *COPIED_TYPES) and stream.codec_context is not None \
                        and stream.codec_context.name in supported:
                    mapping[stream.index] = writer.add_stream_from_template(stream)
            for packet in reader.demux([r for r in reader.streams if r.index in mapping]):
                if packet.dts is None or packet.is_corrupt:  # a cut-off last packet: not copied
                    continue
                packet.stream = mapping[packet.stream.index]
                writer.mux(packet)


def _supported(fmt: str) -> set[str]:
    av = av_module()
    with av.open(io.BytesIO(), "w", format=fmt) as probe:
        return set(probe.supported_codecs)
