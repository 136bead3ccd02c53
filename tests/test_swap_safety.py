"""Nothing the user had is lost: bad weights, outputs that overwrite inputs or cannot be written, a
broken detector model and a target without a face are all one line, exit 2, before any work and with
nothing written (issue 16, items 4 and 5)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mfsbench.checkpoints.formats import load_arcface_pdparams, load_mobilefaceswap_pdparams, write_official
from mfsbench.errors import BadInputError
from mfsbench.models.tiny import build_tiny_student
from tests.face_assets import face_photos_fixture  # noqa: F401 - registers the fixture

# ------------------------------------------------------------------------------ weights (item 4)


def _tiny_pdparams(tmp_path: Path, poison: dict[str, float] | None = None) -> tuple[Path, Path]:
    """The tiny student's two ``.pdparams`` files, with ``poison`` values written into named arrays."""
    model = build_tiny_student()
    student, arcface = tmp_path / "s.pdparams", tmp_path / "a.pdparams"
    write_official(model, student, "mobilefaceswap_pdparams")
    write_official(model, arcface, "arcface_pdparams")
    for path in (student, arcface):
        raw = pickle.loads(path.read_bytes())
        for key, value in (poison or {}).items():
            if key in raw:
                raw[key].flat[1] = value
        path.write_bytes(pickle.dumps(raw, protocol=4))
    return student, arcface


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("bn1.weight", float("nan"), r"tensor bn1\.weight holds non-finite values \(1 NaN of"),
        ("fc.bias", float("inf"), r"tensor fc\.bias holds non-finite values \(1 Inf of"),
        ("conv1.weight", -3e7, r"tensor conv1\.weight holds max \|value\| 3e\+07, above the 10000"),
        ("bn1._variance", 1e9, r"tensor bn1\.running_var holds running variance 1e\+09"),
    ],
)
def test_non_finite_or_absurd_weights_are_refused_at_load_naming_the_tensor(
    tmp_path: Path, key: str, value: float, needle: str
) -> None:
    _, arcface = _tiny_pdparams(tmp_path, {key: value})
    target = build_tiny_student()
    before = {k: v.clone() for k, v in target.id_net.state_dict().items()}
    with pytest.raises(BadInputError, match=needle) as caught:
        load_arcface_pdparams(target.id_net, arcface)
    assert str(arcface) in str(caught.value) and "\n" not in str(caught.value)
    # refused before any copy: the module keeps its own weights, not half of the file's
    assert all(torch.equal(v, target.id_net.state_dict()[k]) for k, v in before.items())


def test_plausible_weights_and_large_step_counters_still_load(tmp_path: Path) -> None:
    # a running variance of 1e6 is a std of 1e3: large activations, but a trained network can have them
    student, arcface = _tiny_pdparams(tmp_path, {"bn1._variance": 1e6, "conv1.weight": 9e3})
    target = build_tiny_student()
    load_mobilefaceswap_pdparams(target, student)
    record = load_arcface_pdparams(target.id_net, arcface)
    assert record.keys > 0 and float(target.id_net.bn1.running_var.max()) == 1e6
    target.id_net.bn1.num_batches_tracked.fill_(10**12)  # integer counters are not weights
    from mfsbench.checkpoints.mapping import check_finite_weights

    check_finite_weights(target.id_net.state_dict(), "state")


def _cosface_state() -> dict[str, torch.Tensor]:
    from mfsbench.evalnets import SphereFace20

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in SphereFace20().state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(s, generator=gen) * 0.01 for k, s in shapes.items()}


@pytest.mark.cli
def test_convert_refuses_nan_weights_and_writes_nothing(run_cli, tmp_path: Path) -> None:
    state = _cosface_state()
    name = next(k for k in state if k.endswith("weight"))
    state[name][0] = float("nan")
    source = tmp_path / "ACC99.28.pth"
    torch.save(state, source)
    out = tmp_path / "cosface.pt"
    result = run_cli("convert", "--format", "cosface", "--checkpoint", str(source), "--out", str(out))
    assert result.code == 2, result.err
    assert f"tensor {name} holds non-finite values" in result.err
    assert len(result.err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.cli
@pytest.mark.slow
def test_swap_refuses_a_nan_checkpoint_before_writing_anything(run_cli, face_photos, tmp_path: Path) -> None:
    from mfsbench.registry import create_model

    model = create_model("mobilefaceswap_224")
    with torch.no_grad():
        model.swap.state_dict()["predictor.first.weight"].view(-1)[0] = float("nan")
    student = write_official(model, tmp_path / "MobileFaceSwap_224.pdparams", "mobilefaceswap_pdparams")
    arcface = tmp_path / "arcface.pdparams"
    arcface.write_bytes(b"never read: the student is refused first")
    out, records = tmp_path / "out.png", tmp_path / "r.jsonl"
    result = run_cli("swap", "--model", "mobilefaceswap_224", "--source", str(face_photos["obama"].path),
                     "--target", str(face_photos["biden"].path), "--out", str(out),
                     "--checkpoint", f"mobilefaceswap_pdparams={student}",
                     "--checkpoint", f"arcface_pdparams={arcface}", "--records", str(records))
    assert result.code == 2, result.err
    assert "tensor predictor.first.weight holds non-finite values (1 NaN of" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not out.exists() and not records.exists()


def test_float_arrays_written_by_paddle_are_checked_too(tmp_path: Path) -> None:
    student, _ = _tiny_pdparams(tmp_path)
    raw = pickle.loads(student.read_bytes())
    key = next(k for k, v in raw.items() if v.ndim == 2)  # a Linear weight: transposed on the way in
    raw[key][0, 0] = np.inf
    student.write_bytes(pickle.dumps(raw, protocol=4))
    with pytest.raises(BadInputError, match=f"tensor {key} holds non-finite values"):
        load_mobilefaceswap_pdparams(build_tiny_student(), student)


# ------------------------------------------------------------------- outputs and records (item 4)

cv2 = pytest.importorskip("cv2")


def _swap_args(source: Path, target: Path, out: Path, records: Path) -> list[str]:
    return ["swap", "--model", "test_mobilefaceswap", "--source", str(source), "--target", str(target),
            "--out", str(out), "--allow-random-weights", "--records", str(records)]


@pytest.fixture
def swaps_run(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the frames the swap pipeline is asked to swap (a refusal must come before any)."""
    from mfsbench.swap.pipeline import SwapPipeline

    calls: list[int] = []
    real = SwapPipeline.swap_frame

    def counted(self: SwapPipeline, frame: np.ndarray) -> np.ndarray:
        calls.append(1)
        return real(self, frame)

    monkeypatch.setattr(SwapPipeline, "swap_frame", counted)
    return calls


@pytest.mark.cli
@pytest.mark.parametrize("way", ["same_path", "symlink", "relative", "source", "records"])
def test_out_that_is_an_input_is_refused_and_the_input_kept(run_cli, face_photos, tmp_path: Path, *,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            swaps_run: list[int], way: str) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    source, target = folder / "obama.jpg", folder / "biden.jpg"
    source.write_bytes(face_photos["obama"].path.read_bytes())
    target.write_bytes(face_photos["biden"].path.read_bytes())
    original = {p: p.read_bytes() for p in (source, target)}
    records = tmp_path / "r.jsonl"
    flag = "--target"
    if way == "same_path":
        out = target
    elif way == "symlink":
        out = tmp_path / "link.jpg"
        out.symlink_to(target)
    elif way == "relative":
        monkeypatch.chdir(tmp_path)
        out = Path("photos") / ".." / "photos" / "biden.jpg"
    elif way == "source":
        out, flag = folder / "." / "obama.jpg", "--source"
    else:  # the JSONL store appended to the user's photo would corrupt it just as surely
        out, records = tmp_path / "out.png", target
    result = run_cli(*_swap_args(source, target, out, records))
    assert result.code == 2, result.err
    assert f"is the same file as {flag}" in result.err and len(result.err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in (source, target)} == original
    assert not swaps_run and not (tmp_path / "r.jsonl").exists()
    if way == "records":
        assert not out.exists()


def _blocked(tmp_path: Path) -> Path:
    """A path whose parent is a regular file: no file can be created under it, even by root."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder is expected")
    return blocker


@pytest.mark.cli
@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("out_is_dir", "is a directory"),
        ("out_is_dir_with_suffix", "is a directory"),
        ("out_folder_unwritable", "not_a_folder is not a directory"),
        ("records_is_dir", "is a directory"),
        ("records_folder_unwritable", "not_a_folder is not a directory"),
    ],
)
def test_unwritable_outputs_are_refused_before_the_swap(run_cli, face_photos, tmp_path: Path, *,
                                                        swaps_run: list[int], case: str, needle: str) -> None:
    out, records = tmp_path / "out.png", tmp_path / "r.jsonl"
    if case == "out_is_dir":
        out = tmp_path / "results"
        out.mkdir()
    elif case == "out_is_dir_with_suffix":
        out = tmp_path / "results.png"
        out.mkdir()
    elif case == "out_folder_unwritable":
        out = _blocked(tmp_path) / "sub" / "out.png"
    elif case == "records_is_dir":
        records = tmp_path / "reports"
        records.mkdir()
    else:
        records = _blocked(tmp_path) / "records.jsonl"
    result = run_cli(*_swap_args(face_photos["obama"].path, face_photos["biden"].path, out, records))
    assert result.code == 2, result.err
    assert needle in result.err and len(result.err.strip().splitlines()) == 1
    assert not swaps_run  # refused before the swap, not after it
    assert not out.is_file() and not records.is_file()
    assert not list(tmp_path.rglob(".mfsbench-write-test-*"))


@pytest.mark.cli
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write into read-only folders")
def test_read_only_out_folder_is_refused_before_the_swap(run_cli, face_photos, tmp_path: Path,
                                                         swaps_run: list[int]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run_cli(*_swap_args(face_photos["obama"].path, face_photos["biden"].path, locked / "o.png",
                                     tmp_path / "r.jsonl"))
    finally:
        locked.chmod(0o700)
    assert result.code == 2 and "is not writable" in result.err and not swaps_run


@pytest.mark.cli
@pytest.mark.parametrize("name", ["converted", "weights.safetensors", "weights.pt"])
def test_convert_to_a_directory_says_so(run_cli, tmp_path: Path, name: str) -> None:
    source = tmp_path / "ACC99.28.pth"
    torch.save(_cosface_state(), source)
    out = tmp_path / name
    out.mkdir()
    result = run_cli("convert", "--format", "cosface", "--checkpoint", str(source), "--out", str(out))
    assert result.code == 2, result.err
    assert f"--out {out} is a directory" in result.err and len(result.err.strip().splitlines()) == 1
    assert not any(out.iterdir())


@pytest.mark.cli
def test_convert_refuses_to_overwrite_its_checkpoint(run_cli, tmp_path: Path) -> None:
    source = tmp_path / "ACC99.28.pt"
    torch.save(_cosface_state(), source)
    before = source.read_bytes()
    link = tmp_path / "same.pt"
    link.symlink_to(source)
    result = run_cli("convert", "--format", "cosface", "--checkpoint", str(source), "--out", str(link))
    assert result.code == 2 and "is the same file as --checkpoint" in result.err
    assert source.read_bytes() == before


# ------------------------------------------------------------------------------ detector model (item 5)


@pytest.mark.cli
@pytest.mark.parametrize("content", [b"", b"<html>404 not found</html>", b"\x08\x07\x12\x04onnx" + bytes(64)],
                         ids=["empty", "html", "truncated"])
def test_corrupt_scrfd_model_is_one_line_naming_the_file(run_cli, face_photos, tmp_path: Path, *,
                                                         swaps_run: list[int], content: bytes) -> None:
    pytest.importorskip("onnxruntime")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    out, records = tmp_path / "out.png", tmp_path / "r.jsonl"
    result = run_cli(*_swap_args(face_photos["obama"].path, face_photos["biden"].path, out, records),
                     "--detector", "scrfd", "--detector-model", str(bad))
    assert result.code == 2, result.err
    assert f"cannot load the SCRFD model {bad}" in result.err and "scrfd_10g_bnkps.onnx" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not swaps_run and not out.exists() and not records.exists()


# ------------------------------------------------------------------------------ faceless targets (item 5)


@pytest.mark.cli
def test_image_target_without_a_face_is_an_error_and_writes_nothing(run_cli, face_photos,
                                                                   tmp_path: Path) -> None:
    from mfsbench.records import read_records

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 127, np.uint8))
    out, records = tmp_path / "out.png", tmp_path / "r.jsonl"
    result = run_cli(*_swap_args(face_photos["biden"].path, blank, out, records))
    assert result.code == 2, result.err
    errors = [line for line in result.err.strip().splitlines() if not line.startswith("WARNING: random")]
    assert len(errors) == 1 and f"no face found in the target {blank}" in errors[0]
    assert not out.exists() and not list(tmp_path.glob(".out-*"))
    (record,) = read_records(records)
    assert record.status == "error" and "no face found in the target" in record.error
    assert record.metrics["frames_swapped"] == 0 and record.info["out"] is None


@pytest.mark.cli
def test_video_without_any_face_passes_through_with_one_warning(run_cli, face_photos, tmp_path: Path) -> None:
    from mfsbench.records import read_records
    from tests.face_assets import make_video

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 127, np.uint8))
    video = make_video(blank, tmp_path / "wall.mp4", seconds=0.2, size=(320, 240))
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    result = run_cli(*_swap_args(face_photos["biden"].path, video, out, records))
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if "no face found in any" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING:") and str(video) in warnings[0]
    assert out.is_file()
    (record,) = read_records(records)
    assert record.status == "ok" and record.metrics["frames_swapped"] == 0
    assert record.metrics["frames_without_face"] == record.metrics["frames"] > 0
    assert record.info["warning"] == "no face found in any frame of the target"


# ------------------------------------------------------------- the evaluators' loaders (quality, item 4)


def test_quality_evaluator_checkpoints_are_checked_too(tmp_path: Path) -> None:
    from mfsbench.checkpoints.formats import load_cosface
    from mfsbench.evalnets import SphereFace20
    from mfsbench.evalnets.inception import FIDInceptionV3, load_fid_inception

    state = _cosface_state()
    key = next(k for k in state if k.endswith("bias"))
    state[key][0] = float("-inf")
    cosface = tmp_path / "ACC99.28.pth"
    torch.save(state, cosface)
    with pytest.raises(BadInputError, match=f"tensor {key} holds non-finite values"):
        load_cosface(SphereFace20(), cosface)

    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in FIDInceptionV3().state_dict().items()}
    inception = {k: torch.zeros(s, dtype=d) for k, (s, d) in shapes.items()}
    key = next(k for k in inception if k.endswith("running_mean"))
    inception[key][0] = 5e4
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(inception, path)
    with pytest.raises(BadInputError, match=f"tensor {key} holds max \\|value\\| 5e\\+04"):
        load_fid_inception(path)


@pytest.mark.cli
def test_convert_that_fails_to_write_leaves_nothing(run_cli, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "ACC99.28.pth"
    torch.save(_cosface_state(), source)
    out = tmp_path / "cosface.pt"
    real_save = torch.save

    def disk_full(obj: object, path: object, *args: object, **kwargs: object) -> None:
        Path(str(path)).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    result = run_cli("convert", "--format", "cosface", "--checkpoint", str(source), "--out", str(out))
    assert result.code == 2 and "No space left on device" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]  # no half file, no temp file
    monkeypatch.setattr(torch, "save", real_save)
    assert run_cli("convert", "--format", "cosface", "--checkpoint", str(source), "--out", str(out)).code == 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's private one
