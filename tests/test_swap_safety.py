"""Nothing the user had is lost: bad weights, outputs that overwrite inputs or cannot be written, a
broken detector model and a target without a face are all one line, exit 2, before any work and with
nothing written (issue 16, items 4 and 5)."""

from __future__ import annotations

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
