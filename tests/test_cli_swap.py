"""End-to-end `mfsbench swap` on real photos and a generated video, and its bad-input paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfsbench.records import read_records
from tests.face_assets import (
    FacePhoto,
    face_photos_fixture,  # noqa: F401 - registers the fixture
    make_video,
)

cv2 = pytest.importorskip("cv2")


#: the target video's length: 1 s at 25 fps (2 s took ~30 s more of the suite, for the same checks)
FRAMES = 25


@pytest.fixture(scope="module")
def target_video(tmp_path_factory: pytest.TempPathFactory, face_photos: dict[str, FacePhoto]) -> Path:
    return make_video(face_photos["biden"].path, tmp_path_factory.mktemp("video") / "biden.mp4",
                      seconds=FRAMES / 25, fps=25)


def _video_geometry(path: Path) -> tuple[int, float, int, int]:
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    geometry = (frames, capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    return geometry


@pytest.mark.slow
@pytest.mark.cli
def test_video_swap_keeps_geometry_and_reports_stage_times(run_cli, face_photos, target_video,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "swapped.mp4"
    records = tmp_path / "records.jsonl"
    result = run_cli("swap", "--model", "mobilefaceswap_224", "--source", str(face_photos["obama"].path),
                     "--target", str(target_video), "--out", str(out), "--allow-random-weights",
                     "--records", str(records))
    assert result.code == 0, result.err
    assert "random weights" in result.err
    assert _video_geometry(out) == _video_geometry(target_video)
    for stage in ("detect", "align", "identity", "frame_network", "paste_back", "end to end"):
        assert stage in result.out
    record = read_records(records)[0]
    assert record.info["random_weights"] is True
    assert record.metrics["frames"] == FRAMES and record.metrics["frames_swapped"] == FRAMES
    assert record.metrics["frame_network_ms"] > 0 and record.metrics["fps"] > 0
    assert not list(tmp_path.glob(".swapped-*"))  # no temporary file left behind


@pytest.mark.cli
def test_image_swap_changes_only_the_face_region(run_cli, face_photos, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    target = face_photos["obama2"].path
    result = run_cli("swap", "--model", "test_mobilefaceswap", "--source", str(face_photos["biden"].path),
                     "--target", str(target), "--out", str(out), "--allow-random-weights",
                     "--size", "224", "--records", str(tmp_path / "r.jsonl"))
    assert result.code == 0, result.err
    before, after = cv2.imread(str(target)), cv2.imread(str(out))
    assert before.shape == after.shape
    changed = np.abs(before.astype(int) - after.astype(int)).sum(axis=2) > 0
    assert 0 < changed.mean() < 0.5  # the face changed, most of the photo did not


@pytest.mark.cli
def test_an_image_target_without_a_face_is_an_error_not_a_copy(run_cli, face_photos, tmp_path: Path) -> None:
    """Issue 16: a faceless image target used to come back as a silent copy with exit 0."""
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 127, np.uint8))
    out = tmp_path / "out.png"
    result = run_cli("swap", "--model", "test_mobilefaceswap", "--source", str(face_photos["biden"].path),
                     "--target", str(blank), "--out", str(out), "--allow-random-weights",
                     "--records", str(tmp_path / "r.jsonl"))
    assert result.code == 2 and "no face found in the target" in result.err
    assert not out.exists()


@pytest.mark.cli
@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("no_weights", "needs its official checkpoints"),
        ("missing_source", "image not found"),
        ("no_face_source", "no face found in --source"),
        ("corrupt_video", "no decodable frame"),
        ("mixed_kinds", "both be videos or both be images"),
        ("not_swappable", "cannot run `mfsbench swap`"),
        ("missing_checkpoint", "checkpoint not found"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run_cli, face_photos, tmp_path: Path,
                                                          case: str, needle: str) -> None:
    source, target = str(face_photos["obama"].path), str(face_photos["biden"].path)
    out = tmp_path / "out.png"
    model, extra = "test_mobilefaceswap", ["--allow-random-weights"]
    if case == "no_weights":
        model, extra = "mobilefaceswap_224", []
    elif case == "missing_source":
        source = str(tmp_path / "nope.jpg")
    elif case == "no_face_source":
        blank = tmp_path / "blank.png"
        cv2.imwrite(str(blank), np.zeros((64, 64, 3), np.uint8))
        source = str(blank)
    elif case == "corrupt_video":
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
        target, out = str(bad), tmp_path / "out.mp4"
    elif case == "mixed_kinds":
        out = tmp_path / "out.mp4"
    elif case == "not_swappable":
        model = "deepfakes_64"
    elif case == "missing_checkpoint":
        model, extra = "mobilefaceswap_224", ["--checkpoint", str(tmp_path / "none.pdparams")]
    result = run_cli("swap", "--model", model, "--source", source, "--target", target, "--out", str(out),
                     "--records", str(tmp_path / "r.jsonl"), *extra)
    assert result.code == 2, result.err
    assert needle in result.err and len(result.err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "r.jsonl").exists()


def test_pipeline_detects_every_kth_frame_and_matches_the_plain_network(face_photos) -> None:
    import torch

    from mfsbench.faces.align import align
    from mfsbench.faces.detectors import get_detector, read_image
    from mfsbench.registry import create_model, get_spec
    from mfsbench.swap.pipeline import SwapPipeline, largest_face

    spec = get_spec("test_mobilefaceswap")
    detector = get_detector("dlib")
    pipeline = SwapPipeline(spec, create_model(spec.name), detector, 64, detect_every=3)
    pipeline.inject(read_image(face_photos["obama"].path))
    frame = read_image(face_photos["biden"].path)
    for _ in range(7):
        pipeline.swap_frame(frame)
    assert pipeline.timer.calls["detect"] == 1 + 3  # source + frames 0, 3, 6
    # the channels-last frame network computes what the plain frame stage computes
    crop, _ = align(frame, largest_face(detector.detect(frame)).landmarks5, "arcface", 64)
    tensor = pipeline.adapter.frame_tensor(crop)
    with torch.no_grad():
        fast = pipeline.frame_net(tensor.contiguous(memory_format=torch.channels_last))[0]
        plain = pipeline.frame_net.to(memory_format=torch.contiguous_format)(tensor)[0]
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.cli
def test_bad_detect_every_and_detector_option(run_cli, face_photos, tmp_path: Path) -> None:
    common = ["swap", "--model", "test_mobilefaceswap", "--source", str(face_photos["obama"].path),
              "--target", str(face_photos["biden"].path), "--out", str(tmp_path / "o.png"),
              "--allow-random-weights", "--records", str(tmp_path / "r.jsonl")]
    result = run_cli(*common, "--detect-every", "0")
    assert result.code == 2 and "--detect-every must be at least 1" in result.err
    result = run_cli(*common, "--detector-option", "upsample")
    assert result.code == 2 and "is not KEY=INT" in result.err
    result = run_cli(*common, "--detector-option", "upsample=0")
    assert result.code == 0, result.err


@pytest.mark.cli
def test_interrupted_video_swap_keeps_the_frames_done_and_resumes(run_cli, face_photos, target_video,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mfsbench.swap.pipeline import SwapPipeline

    real = SwapPipeline.swap_frame
    calls = []
    stop_at = [4]

    def ctrl_c_at_a_frame(self: SwapPipeline, frame: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return real(self, frame)

    monkeypatch.setattr(SwapPipeline, "swap_frame", ctrl_c_at_a_frame)
    out, records = tmp_path / "swapped.mp4", tmp_path / "records.jsonl"
    command = ("swap", "--model", "test_mobilefaceswap", "--source", str(face_photos["obama"].path),
               "--target", str(target_video), "--out", str(out), "--allow-random-weights",
               "--size", "224", "--records", str(records))
    result = run_cli(*command)
    assert result.code == 130
    kept = tmp_path / "swapped.partial.mp4"
    assert f"interrupted after 3 of {FRAMES} frame(s); they are in {kept}" in result.err
    assert not out.exists() and not list(tmp_path.glob(".swapped-*"))  # never a truncated OUT
    frames, _fps, width, height = _video_geometry(kept)
    assert frames == 3 and (width, height) == _video_geometry(target_video)[2:]
    (record,) = read_records(records)
    assert record.status == "error" and "interrupted after 3 frame(s)" in record.error
    assert record.metrics["frames"] == 3 and record.info["out"] == str(kept)

    # interrupted again before any frame: the earlier partial video is left as it was
    stop_at[0] = len(calls) + 1
    again = run_cli(*command)
    assert again.code == 130 and f"interrupted after 0 of {FRAMES} frame(s)" in again.err
    assert _video_geometry(kept)[0] == 3 and not out.exists() and not list(tmp_path.glob(".swapped-*"))
    assert "wrote nothing" in again.out
    assert read_records(records)[-1].error == "interrupted before the first frame; nothing kept"

    # a resume interrupted at its second new frame keeps 3 + 1 frames; the next resume completes
    stop_at[0] = len(calls) + 2
    partly = run_cli(*command, "--resume")
    assert partly.code == 130
    assert f"interrupted after 4 of {FRAMES} frame(s); they are in {kept}" in partly.err
    assert _video_geometry(kept)[0] == 4
    first_kept = _first_frame(kept)
    stop_at[0] = 0
    swapped_before = len(calls)
    resumed = run_cli(*command, "--resume")
    assert resumed.code == 0, resumed.err
    assert len(calls) - swapped_before == FRAMES - 4  # only the frames the partial file lacked were swapped
    assert not kept.exists() and not list(tmp_path.glob(".swapped-*"))
    assert _video_geometry(out) == _video_geometry(target_video)
    assert f"{FRAMES} frame(s) (4 from the interrupted run)" in resumed.out
    last = read_records(records)[-1]
    assert last.status == "ok" and last.metrics["frames"] == FRAMES and last.metrics["frames_resumed"] == 4
    assert last.metrics["frames_swapped"] == FRAMES - 4
    # the copied frames are the swapped ones (re-encoded once more), not the target's
    copied, original = _first_frame(out).astype(float), _first_frame(target_video).astype(float)
    assert np.abs(copied - first_kept).mean() < np.abs(copied - original).mean()

    nothing = run_cli(*command, "--resume")
    assert nothing.code == 2 and "nothing to resume" in nothing.err
    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((32, 48, 3), np.uint8))
    make_video(tmp_path / "small.png", kept, seconds=0.2, size=(320, 240))
    other = run_cli(*command, "--resume")
    assert other.code == 2 and "is not a swap of" in other.err and kept.exists()
    kept.write_bytes(b"not a video")
    corrupt = run_cli(*command, "--resume")
    assert corrupt.code == 2 and "remove it or run without --resume" in corrupt.err
    assert len(corrupt.err.strip().splitlines()) == 1


def _first_frame(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame
