"""Issue 16 item 2: `mfsbench swap` video output keeps what the user had.

Audio and timestamps survive, odd frame sizes stay exact, a video with nothing swapped comes back as
a stream copy (bit-exact), truncated targets are reported, SIGTERM keeps a partial output and its
record like Ctrl-C, and SIGKILL leaves a visible, resumable partial file and no hidden temp file.
The clips are generated here with PyAV (an AAC tone for audio); faces come from the real photos.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mfsbench.records import read_records
from tests.face_assets import FacePhoto, face_photos_fixture  # noqa: F401 - registers the fixture

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

REPO = Path(__file__).resolve().parents[1]


def _face_frames(photo: Path, count: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The photo fitted into ``size`` (width, height), drifting one pixel a frame."""
    image = cv2.imread(str(photo))
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0]) * 0.8
    for i in range(count):
        matrix = np.array([[scale, 0, (width - scale * image.shape[1]) / 2 + i],
                           [0, scale, (height - scale * image.shape[0]) / 2]])
        yield cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def _wall_frames(count: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """A textured, faceless wall panning sideways (texture, so a re-encode would show in size/PSNR)."""
    width, height = size
    rng = np.random.default_rng(0)
    wall = cv2.GaussianBlur(rng.integers(0, 255, (height, width + count * 2, 3), dtype=np.uint8), (5, 5), 0)
    for i in range(count):
        yield np.ascontiguousarray(wall[:, 2 * i:2 * i + width])


def _clip(path: Path, frames: Iterator[np.ndarray], fps: float = 24, audio: float = 0.0, **kwargs) -> Path:
    from mfsbench.swap.av_clips import write_clip

    return write_clip(path, frames, fps, audio_seconds=audio, **kwargs)


def _swap(source: Path, target: Path, out: Path, records: Path, *extra: str) -> list[str]:
    return ["swap", "--model", "test_mobilefaceswap", "--source", str(source), "--target", str(target),
            "--out", str(out), "--allow-random-weights", "--records", str(records), *extra]


def _video_packets(path: Path, kind: str = "video") -> list[tuple[int | None, bytes]]:
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [(p.pts, bytes(p)) for p in container.demux(stream) if p.dts is not None]


def _decoded(path: Path) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(f.pts, f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]


def _seconds(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.pts * f.time_base) for f in container.decode(video=0)]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.slow
@pytest.mark.cli
def test_face_video_keeps_odd_size_timestamps_and_audio(run_cli, face_photos, tmp_path: Path) -> None:
    """Before: OpenCV wrote 640×450 MPEG-4 Part 2 for a 641×451 target, and no audio."""
    target = _clip(tmp_path / "talk.mp4", _face_frames(face_photos["biden"].path, 6, (641, 451)), audio=0.3)
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    result = run_cli(*_swap(face_photos["obama"].path, target, out, records))
    assert result.code == 0, result.err
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.codec_context.width, video.codec_context.height) == \
            ("h264", 641, 451)
        assert len(container.streams.audio) == 1
    assert _seconds(out) == _seconds(target)  # every frame at its own time, none shifted
    assert _video_packets(out, "audio") == _video_packets(target, "audio")  # copied, not re-encoded
    (record,) = read_records(records)
    assert record.metrics["frames_swapped"] > 0 and record.info["stream_copy"] is False
    assert record.info["detector_options"] == {"base_side": 400}  # a video's detection copy (bench_swap)
    assert record.info["encoding"] == {"codec": "libx264", "crf": 18, "preset": "veryfast"}
    assert record.info["frames_read"] == record.info["frames_expected"] == 6
    assert record.info["truncated"] is None
    assert not _leftovers(tmp_path) and not (tmp_path / "out.partial.mp4").exists()


@pytest.mark.slow
@pytest.mark.cli
def test_portrait_phone_video_is_swapped_upright_and_keeps_its_rotation(run_cli, face_photos,
                                                                        tmp_path: Path) -> None:
    """Before: a phone's portrait clip (stored sideways with a display rotation) was swapped as stored:
    no upright face, nothing swapped, and the re-encoded output lost its rotation (played sideways)."""
    upright = list(_face_frames(face_photos["biden"].path, 4, (360, 480)))
    sideways = [np.ascontiguousarray(np.rot90(frame, -1)) for frame in upright]  # shown turned back by 90
    target = _clip(tmp_path / "phone.mp4", iter(sideways), fps=30, rotation=90)
    with av.open(str(target)) as container:
        assert next(container.decode(video=0)).rotation == 90
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    result = run_cli(*_swap(face_photos["obama"].path, target, out, records))
    assert result.code == 0, result.err
    (record,) = read_records(records)
    assert record.metrics["frames_swapped"] == 4 and record.info["video"]["rotation"] == 90
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert [f.rotation for f in frames] == [90] * 4  # still plays upright
    assert (frames[0].width, frames[0].height) == (480, 360)  # stored as the target stores it
    shown = np.rot90(frames[0].to_ndarray(format="bgr24"), 1)  # as a player shows it
    changed = np.abs(shown.astype(int) - upright[0].astype(int)).max(axis=2) > 40
    rows, cols = np.nonzero(changed)
    assert changed.sum() > 200  # the face was swapped where the upright face is …
    assert rows.mean() < 0.75 * 480 and cols.min() > 20 and cols.max() < 340  # … not at a sideways spot


def test_reencoded_video_keeps_colour_matrix_range_and_tags(tmp_path: Path) -> None:
    """Before: frames were re-encoded with swscale's BT.601 default and no colour tags, so a BT.709
    full-range (phone) video came back with its luma off by up to 38 levels on saturated colours."""
    from mfsbench.swap.av_io import Decoded, EncodeSettings, VideoOutput, demux, open_target

    blocks = np.zeros((96, 128, 3), np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
               (40, 200, 90), (230, 30, 120)]
    for index, colour in enumerate(colours):
        blocks[:, index * 16:(index + 1) * 16] = colour
    tags = {"colorspace": 1, "color_primaries": 1, "color_trc": 1, "color_range": 2}  # BT.709, full range
    target = _clip(tmp_path / "hd.mp4", iter([blocks] * 3), fps=25, colour=tags, crf=0)
    container, streams = open_target(target)
    try:
        decoded = [(bgr, pts) for bgr, pts, _packet in demux(container, streams, Decoded())]
        assert np.abs(decoded[0][0].astype(int) - blocks).max() <= 4  # read with its own matrix and range
        output = VideoOutput(tmp_path / "out.mp4", EncodeSettings("libx264", 0, "veryfast"), width=128,
                             height=96, fps=25, time_base=streams.video.time_base, source=streams.video)
        for bgr, pts in decoded:
            output.write(bgr, pts)
        output.close()
    finally:
        container.close()

    def luma_and_tags(path: Path) -> tuple[np.ndarray, dict[str, int]]:
        with av.open(str(path)) as clip:
            context = clip.streams.video[0].codec_context
            frame = next(clip.decode(video=0))
            return frame.to_ndarray()[:96].astype(int), {name: int(getattr(context, name)) for name in tags}

    (luma_in, tags_in), (luma_out, tags_out) = luma_and_tags(target), luma_and_tags(tmp_path / "out.mp4")
    assert tags_in == tags_out == tags
    assert np.abs(luma_in - luma_out).max() <= 2


@pytest.mark.slow
@pytest.mark.cli
def test_faceless_video_comes_back_bit_exact_at_the_same_size(run_cli, face_photos, tmp_path: Path) -> None:
    """Before: a faceless clip came back re-encoded at 36.6 dB and 2.4× the size, without audio."""
    target = _clip(tmp_path / "wall.mp4", _wall_frames(10, (321, 241)), audio=0.4)
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    result = run_cli(*_swap(face_photos["obama"].path, target, out, records))
    assert result.code == 0, result.err
    assert "no face found in any of the 10 frame(s)" in result.err
    assert _video_packets(out) == _video_packets(target)  # the same bytes: bit-exact frames
    assert _video_packets(out, "audio") == _video_packets(target, "audio")
    assert abs(out.stat().st_size / target.stat().st_size - 1) < 0.10
    (record,) = read_records(records)
    assert record.info["stream_copy"] is True and record.info["encoding"] is None
    assert not _leftovers(tmp_path) and not (tmp_path / "out.partial.mp4").exists()


@pytest.mark.slow
@pytest.mark.cli
def test_ffv1_keeps_unswapped_frames_of_a_mixed_video_lossless(run_cli, face_photos, tmp_path: Path) -> None:
    """A video with a face in some frames is re-encoded; with --codec ffv1 the others stay exact."""
    frames = [*_face_frames(face_photos["biden"].path, 2, (480, 360)), *_wall_frames(3, (480, 360))]
    target = _clip(tmp_path / "mixed.mkv", iter(frames), fps=25, codec="ffv1", pix_fmt="bgr0")
    out, records = tmp_path / "out.mkv", tmp_path / "r.jsonl"
    result = run_cli(*_swap(face_photos["obama"].path, target, out, records, "--codec", "ffv1"))
    assert result.code == 0, result.err
    (record,) = read_records(records)
    assert record.metrics["frames_swapped"] == 2 and record.info["stream_copy"] is False
    before, after = _decoded(target), _decoded(out)
    assert [pts for pts, _ in before] == [pts for pts, _ in after]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(before[2:], after[2:], strict=True))
    assert not np.array_equal(before[0][1], after[0][1])  # the face frames were swapped


@pytest.mark.cli
@pytest.mark.parametrize(("flags", "needle"), [
    (["--codec", "h264_nonexistent"], "is not a video encoder of this FFmpeg build; choose libx264"),
    (["--crf", "99"], "--crf 99 is outside 0-51 for libx264"),
])
def test_bad_codec_or_crf_is_one_line_before_any_work(run_cli, face_photos, tmp_path: Path,
                                                      flags: list[str], needle: str) -> None:
    target = _clip(tmp_path / "wall.mp4", _wall_frames(2, (64, 48)))
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    result = run_cli(*_swap(face_photos["obama"].path, target, out, records, *flags))
    assert result.code == 2 and needle in result.err and len(result.err.strip().splitlines()) == 1
    assert not out.exists() and not records.exists() and not (tmp_path / "out.partial.mp4").exists()


@pytest.mark.cli
def test_missing_pyav_names_the_video_extra(run_cli, face_photos, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    target = _clip(tmp_path / "wall.mp4", _wall_frames(2, (64, 48)))
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    result = run_cli(*_swap(face_photos["obama"].path, target, tmp_path / "o.mp4", tmp_path / "r.jsonl"))
    assert result.code == 2 and "pip install 'mfsbench[video]'" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.cli
def test_truncated_target_is_reported_not_silently_shortened(run_cli, face_photos, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)  # fresh noise every frame: each frame a similar share of the file
    noise = (rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(30))
    whole = _clip(tmp_path / "whole.mp4", noise, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    result = run_cli(*_swap(face_photos["obama"].path, cut, out, records))
    assert result.code == 0, result.err
    (record,) = read_records(records)
    read = record.info["frames_read"]
    assert 0 < read < 30 and record.info["frames_expected"] == 30
    assert f"read {read} of 30 frame(s) the container announces" in record.info["truncated"]
    warnings = [line for line in result.err.splitlines() if "announces" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"WARNING: {cut}: read {read} of 30 frame(s)")
    assert len(_decoded(out)) == read == record.metrics["frames"]


# ------------------------------------------------------------------ signals: a real child process

_BLOCKING_MAIN = """
import os, sys, time
from mfsbench.swap.pipeline import SwapPipeline
real, seen, block_at = SwapPipeline.swap_frame, [0], int(os.environ["BLOCK_AT"])
def swap_frame(self, frame):
    seen[0] += 1
    if seen[0] == block_at:  # stay here until a signal arrives; the test waits for this line
        sys.stderr.write("\\nBLOCKED\\n"); sys.stderr.flush()
        while True:
            time.sleep(0.05)
    return real(self, frame)
SwapPipeline.swap_frame = swap_frame
from mfsbench.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _start_blocking_swap(args: list[str], block_at: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BLOCK_AT": str(block_at), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", _BLOCKING_MAIN, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_until_blocked(process: subprocess.Popen[bytes]) -> str:
    """Read the child's stderr until it says it is blocked (a safety limit only, not a timing bet)."""
    seen, limit = b"", time.monotonic() + 300
    while b"BLOCKED\n" not in seen:
        chunk = process.stderr.read1(4096)
        if not chunk or time.monotonic() > limit:
            process.kill()
            pytest.fail(f"the swap never reached the blocking frame: {seen.decode(errors='replace')}")
        seen += chunk
    return seen.decode()


@pytest.mark.slow
@pytest.mark.cli
def test_sigterm_keeps_the_partial_output_and_the_record(face_photos, tmp_path: Path) -> None:
    """Before: SIGTERM left a hidden temp file, no partial and no record."""
    import signal

    target = _clip(tmp_path / "wall.mp4", _wall_frames(12, (160, 120)), fps=10, audio=1.2)
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    process = _start_blocking_swap(_swap(face_photos["obama"].path, target, out, records), block_at=6)
    _wait_until_blocked(process)
    process.send_signal(signal.SIGTERM)
    _stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr.decode()
    kept = tmp_path / "out.partial.mp4"
    assert f"interrupted after 5 of 12 frame(s); they are in {kept}" in stderr.decode()
    assert len(_decoded(kept)) == 5 and not out.exists() and not _leftovers(tmp_path)
    assert _video_packets(kept, "audio")  # the audio demuxed so far went along
    (record,) = read_records(records)
    assert record.status == "error" and record.info["interrupted_by"] == "SIGTERM"
    assert record.metrics["frames"] == 5 and record.info["out"] == str(kept)


@pytest.mark.slow
@pytest.mark.cli
def test_sigkill_leaves_a_visible_playable_partial_that_resumes(run_cli, face_photos, tmp_path: Path) -> None:
    """Before: SIGKILL left only a hidden, unplayable temp file that --resume could not use."""
    target = _clip(tmp_path / "wall.mp4", _wall_frames(41, (160, 120)), fps=10)
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    args = _swap(face_photos["obama"].path, target, out, records)
    process = _start_blocking_swap(args, block_at=41)  # keyframes every 10 frames: fragments of 10
    _wait_until_blocked(process)
    kept = tmp_path / "out.partial.mp4"
    # the fragments closed by then are on disk (written packet by packet) before the kill
    process.kill()
    process.wait(timeout=60)
    assert not _leftovers(tmp_path) and not out.exists()
    before = _decoded(kept)
    survived = len(before)
    assert survived >= 10 and survived % 10 == 0  # whole fragments only
    resumed = run_cli(*args, "--resume")
    assert resumed.code == 0, resumed.err
    assert _seconds(out) == _seconds(target) and not kept.exists() and not _leftovers(tmp_path)
    assert f"41 frame(s) ({survived} from the interrupted run)" in resumed.out
    # the partial file's packets were copied, not decoded and encoded a second time
    assert read_records(records)[-1].info["resumed_by"] == "packet copy"
    after = _decoded(out)[:survived]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(before, after, strict=True))


@pytest.mark.slow
@pytest.mark.cli
def test_resume_with_another_crf_re_encodes_the_partial_frames(run_cli, face_photos, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Packets are copied only when the new encoder writes the same stream; another --crf re-encodes."""
    from mfsbench.swap.pipeline import SwapPipeline

    real, calls = SwapPipeline.swap_frame, []

    def ctrl_c_at_frame_15(self: SwapPipeline, frame: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) == 15:
            raise KeyboardInterrupt
        return real(self, frame)

    monkeypatch.setattr(SwapPipeline, "swap_frame", ctrl_c_at_frame_15)
    target = _clip(tmp_path / "wall.mp4", _wall_frames(20, (96, 64)), fps=10)
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    args = _swap(face_photos["obama"].path, target, out, records)
    assert run_cli(*args).code == 130
    assert len(_decoded(tmp_path / "out.partial.mp4")) == 14
    resumed = run_cli(*args, "--resume", "--crf", "30")
    assert resumed.code == 0, resumed.err
    last = read_records(records)[-1]
    assert last.info["resumed_by"] == "re-encode" and last.metrics["frames_resumed"] == 14
    assert _seconds(out) == _seconds(target) and not _leftovers(tmp_path)


def test_packet_copy_resume_survives_a_session_cut_after_one_frame(tmp_path: Path) -> None:
    """A session that ends after one frame has decode time = presentation time; the next session's
    encoder starts its decode times a B-frame delay earlier, which a muxer would refuse (found by the
    Ctrl-C-twice-then-resume path). The copied tail is fitted below it; frames and times unchanged."""
    from fractions import Fraction

    from mfsbench.swap.av_io import EncodeSettings, VideoOutput
    from mfsbench.swap.av_resume import copy_gops, packets_fit

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(30)]
    geometry = {"width": 64, "height": 48, "fps": 25, "time_base": Fraction(1, 12800)}

    def session(source: Path | None, dest: Path, upto: int) -> int:
        output, copied = VideoOutput(dest, EncodeSettings(), **geometry), 0
        if source is not None:
            delay = packets_fit(source, output)
            assert delay is not None and delay > 0  # x264 at veryfast uses B-frames
            copied = copy_gops(source, output, delay)
        for index in range(copied, upto):
            output.write(frames[index], index * 512)
        output.close()
        return copied

    first, second, third = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    session(None, first, 3)
    assert session(first, second, 4) == 3
    assert session(second, third, 30) == 4
    decoded = _decoded(third)
    assert [pts for pts, _ in decoded] == [512 * i for i in range(30)]
    kept = _decoded(second)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(kept, decoded[:4], strict=False))


def _decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as clip:
        return [frame.to_ndarray(format="bgr24") for frame in clip.decode(video=0)]


def test_background_encoder_writes_the_same_video_as_the_inline_one(tmp_path: Path) -> None:
    """The swap encodes on a worker thread (``background=True``): same packets in, same frames out,
    in order, and every queued frame is in the file after ``close``."""
    from mfsbench.swap.av_io import EncodeSettings, VideoOutput

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(7)]
    paths = {}
    for background in (False, True):
        paths[background] = tmp_path / f"out_{background}.mp4"
        output = VideoOutput(paths[background], EncodeSettings("libx264", 18, "veryfast"), width=64,
                             height=48, fps=25, background=background)
        for pts, frame in enumerate(frames):
            output.write(frame, pts)
        output.close()
        assert output.frames == len(frames)
    inline, threaded = _decoded_frames(paths[False]), _decoded_frames(paths[True])
    assert len(inline) == len(threaded) == len(frames)
    for a, b in zip(inline, threaded, strict=True):
        assert np.array_equal(a, b)


def test_background_encoder_failure_is_raised_to_the_caller(tmp_path: Path) -> None:
    """A frame the encoder cannot take fails on the worker thread; ``close`` raises it (never a silent
    short file), and the frames after it are not written."""
    from mfsbench.swap.av_io import EncodeSettings, VideoOutput

    output = VideoOutput(tmp_path / "out.mp4", EncodeSettings("libx264", 18, "veryfast"), width=64,
                         height=48, fps=25, background=True)
    output.write(np.zeros((48, 64, 3), np.uint8), 0)
    output.write(np.zeros((48, 64), np.uint8), 1)  # not a BGR frame: from_ndarray refuses it
    with pytest.raises(ValueError):
        try:
            for pts in range(2, 6):  # raised by a later write once the worker failed, or by close
                output.write(np.zeros((48, 64, 3), np.uint8), pts)
        finally:
            output.close()  # as swap_video does: waits for the worker, closes the file
    assert output._worker is None  # the worker thread was joined
