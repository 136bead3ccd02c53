"""A distilled student's ``.safetensors`` goes into ``swap``, ``device``, ``quality`` and ``flops`` through
the one strict checkpoint loader, and converts to the official ``.pdparams`` layout (issue 18 item 6).

The fast tests build the tiny zoo student directly; the slow one trains it with ``mfsbench distill``
for two steps on real face crops and swaps a real photo with the file the run wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.checkpoints.formats import load_official, write_official
from mfsbench.errors import BadInputError
from mfsbench.models.tiny import build_tiny_student
from mfsbench.registry import get_spec
from mfsbench.swap.checkpoints import load_checkpoints
from tests.face_assets import face_photos_fixture  # noqa: F401

safetensors_torch = pytest.importorskip("safetensors.torch")

STUDENT = "test_mobilefaceswap"


def _write_student(folder: Path, *, seed: int = 3, poison: str | None = None) -> tuple[Path, Path, object]:
    """(student.safetensors as distill writes it, the id net's .safetensors, the model they came from)."""
    torch.manual_seed(seed)
    model = build_tiny_student()
    swap = {k: v.detach().clone().contiguous() for k, v in model.swap.state_dict().items()}
    if poison is not None:
        swap[poison].view(-1)[0] = float("nan")
    student = folder / "student.safetensors"
    safetensors_torch.save_file(swap, str(student), metadata={"student": STUDENT, "step": "2"})
    id_net = folder / "id_net.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in model.id_net.state_dict().items()},
                                str(id_net))
    return student, id_net, model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_student_safetensors_load_strictly_with_their_sha256(tmp_path: Path) -> None:
    student, id_net, trained = _write_student(tmp_path)
    torch.manual_seed(99)
    fresh = build_tiny_student()
    assert not _same_weights(fresh, trained)
    loaded = load_checkpoints(get_spec(STUDENT), fresh, [str(id_net), str(student)])  # any order
    assert _same_weights(fresh, trained)
    assert [(c.format, c.sha256, c.path) for c in loaded] == [
        ("safetensors:mobilefaceswap_pdparams", sha256_file(student), str(student)),
        ("safetensors:arcface_pdparams", sha256_file(id_net), str(id_net)),
    ]


def test_bad_student_files_are_one_clear_error(tmp_path: Path) -> None:
    spec = get_spec(STUDENT)
    student, id_net, model = _write_student(tmp_path)
    state = safetensors_torch.load_file(str(student))

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(student.read_bytes()[:100])
    with pytest.raises(BadInputError, match=r"is not a readable \.safetensors file"):
        load_checkpoints(spec, build_tiny_student(), [str(truncated), str(id_net)])

    extra = tmp_path / "extra.safetensors"
    safetensors_torch.save_file({**state, "bogus.weight": torch.zeros(2)}, str(extra),
                                metadata={"student": STUDENT})
    with pytest.raises(BadInputError, match=r"1 unexpected: bogus\.weight"):
        load_checkpoints(spec, build_tiny_student(), [str(extra), str(id_net)])

    dropped = "predictor.first.weight"
    short = tmp_path / "short.safetensors"
    safetensors_torch.save_file({k: v for k, v in state.items() if k != dropped}, str(short),
                                metadata={"student": STUDENT})
    with pytest.raises(BadInputError, match=rf"1 missing: {dropped.replace('.', '[.]')}"):
        load_checkpoints(spec, build_tiny_student(), [str(short), str(id_net)])

    other = tmp_path / "other.safetensors"
    safetensors_torch.save_file(state, str(other), metadata={"student": "mfs_no_weight_prediction"})
    with pytest.raises(BadInputError, match="holds a distilled mfs_no_weight_prediction student"):
        load_checkpoints(spec, build_tiny_student(), [str(other), str(id_net)])

    with pytest.raises(BadInputError, match=r"also needs arcface\.pdparams"):
        load_checkpoints(spec, model, [str(student)])


@pytest.mark.cli
def test_nan_student_is_refused_by_swap_and_flops_in_one_line(run_cli, face_photos, tmp_path: Path) -> None:
    student, id_net, _ = _write_student(tmp_path, poison="predictor.first.weight")
    out = tmp_path / "out.png"
    swap = run_cli("swap", "--model", STUDENT, "--source", str(face_photos["obama"].path),
                   "--target", str(face_photos["biden"].path),
                   "--out", str(out), "--checkpoint", str(student), "--checkpoint", str(id_net))
    flops = run_cli("flops", "--models", STUDENT, "--checkpoint", str(student), "--checkpoint", str(id_net),
                    "--out", str(tmp_path / "reports"))
    for result in (swap, flops):
        assert result.code == 2, result.err
        lines = result.err.strip().splitlines()
        assert len(lines) == 1
        assert "tensor predictor.first.weight holds non-finite values (1 NaN of" in lines[0]
    assert not out.exists() and not (tmp_path / "reports" / "records.jsonl").exists()


@pytest.mark.cli
def test_flops_records_the_weights_it_verified(run_cli, tmp_path: Path) -> None:
    student, id_net, _ = _write_student(tmp_path)
    result = run_cli("flops", "--models", STUDENT, "--mode", "video", "--checkpoint", str(student),
                     "--checkpoint", str(id_net), "--out", str(tmp_path / "reports"))
    assert result.code == 0, result.err
    records = [json.loads(line) for line in (tmp_path / "reports" / "records.jsonl").read_text().splitlines()]
    assert records and all(r["model"] == STUDENT for r in records)
    sums = {c["sha256"] for r in records for c in r["info"]["checkpoints"]}
    assert sums == {sha256_file(student), sha256_file(id_net)}
    two = run_cli("flops", "--models", f"{STUDENT},test_frame_only", "--checkpoint", str(student),
                  "--out", str(tmp_path / "r2"))
    assert two.code == 2 and "exactly one runnable --models" in two.err


@pytest.mark.cli
def test_convert_student_to_pdparams_round_trips(run_cli, tmp_path: Path) -> None:
    """safetensors → official .pdparams → load gives the same tensors, and the same bytes as the writer
    the official-layout tests prove against the released file's layout."""
    student, _, trained = _write_student(tmp_path)
    out = tmp_path / "MobileFaceSwap_224.pdparams"
    result = run_cli("convert", "--format", "mobilefaceswap_pdparams", "--checkpoint", str(student),
                     "--out", str(out))
    assert result.code == 0, result.err
    assert sha256_file(out) in result.out and sha256_file(student) in result.out
    reference = write_official(trained, tmp_path / "reference.pdparams", "mobilefaceswap_pdparams")
    assert out.read_bytes() == reference.read_bytes()
    torch.manual_seed(7)
    fresh = build_tiny_student()
    load_official(fresh, out, "mobilefaceswap_pdparams")
    assert _same_weights(fresh.swap, trained.swap)

    wrong = run_cli("convert", "--format", "mobilefaceswap_pdparams", "--checkpoint", str(student),
                    "--out", str(tmp_path / "x.safetensors"))
    assert wrong.code == 2 and "ends in .pdparams" in wrong.err
    (tmp_path / "nan").mkdir()
    nan_student, _, _ = _write_student(tmp_path / "nan", poison="predictor.first.weight")
    bad = run_cli("convert", "--format", "mobilefaceswap_pdparams", "--checkpoint", str(nan_student),
                  "--out", str(tmp_path / "bad.pdparams"))
    assert bad.code == 2 and len(bad.err.strip().splitlines()) == 1 and "non-finite" in bad.err
    assert not (tmp_path / "bad.pdparams").exists()


@pytest.mark.slow
@pytest.mark.cli
def test_distilled_student_swaps_a_real_photo_and_is_counted(run_cli, face_photos, tmp_path: Path) -> None:
    """Two distill steps on real face crops → the student.safetensors the run wrote → swap and flops."""
    from mfsbench.distill import config as cfg
    from mfsbench.distill.session import Session
    from tests.distill_faces import TEST_MIN_EYE_PX, write_face_folder

    photos = write_face_folder(face_photos, tmp_path / "photos")
    config = cfg.resolve("kd_only", None, {
        "model": {"teacher": "test_simswap", "student": STUDENT, "allow_random_weights": True},
        "data": {"min_eye_distance_px": TEST_MIN_EYE_PX, "batch_size": 2},
        "loss": {"perceptual_width": 8},
        "run": {"steps": 2, "log_every": 1, "eval_every": 1000, "ckpt_every": 1000}})
    session = Session(config, "kd_only", photos, tmp_path / "run")
    outputs = session.start(None)
    student = Path(outputs["safetensors"])
    id_net = tmp_path / "id_net.safetensors"  # the id net it trained with (here: the teacher's, random)
    id_state = session.nets.student.id_net.state_dict()
    safetensors_torch.save_file({k: v.contiguous() for k, v in id_state.items()}, str(id_net))

    out, records = tmp_path / "swapped.png", tmp_path / "swap.jsonl"
    swap = run_cli("swap", "--model", STUDENT, "--source", str(face_photos["obama"].path),
                   "--target", str(face_photos["biden"].path), "--out", str(out),
                   "--checkpoint", str(student), "--checkpoint", str(id_net), "--records", str(records))
    assert swap.code == 0, swap.err
    import cv2

    swapped, target = cv2.imread(str(out)), cv2.imread(str(face_photos["biden"].path))
    assert swapped is not None and swapped.shape == target.shape and (swapped != target).any()
    record = json.loads(records.read_text().splitlines()[-1])
    assert record["info"]["random_weights"] is False
    assert {c["sha256"] for c in record["info"]["checkpoints"]} == {sha256_file(student), sha256_file(id_net)}

    flops = run_cli("flops", "--models", STUDENT, "--mode", "video", "--checkpoint", str(student),
                    "--checkpoint", str(id_net), "--out", str(tmp_path / "reports"))
    assert flops.code == 0, flops.err
    counted = [json.loads(line) for line in (tmp_path / "reports" / "records.jsonl").read_text().splitlines()]
    assert sha256_file(student) in {c["sha256"] for r in counted for c in r["info"]["checkpoints"]}

    trained = session.nets.student.cpu()
    torch.manual_seed(5)
    fresh = build_tiny_student()
    load_checkpoints(get_spec(STUDENT), fresh, [str(student), str(id_net)])
    assert _same_weights(fresh.swap, trained.swap)
