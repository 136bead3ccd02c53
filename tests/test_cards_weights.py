"""``format = "safetensors"`` cards (issue 17 item 1): a user's weights for a registered zoo architecture.

The files are the tiny zoo student's two ``.safetensors`` (as ``mfsbench distill`` and ``mfsbench
convert`` write them). A card for them must run exactly as ``--models test_mobilefaceswap --checkpoint
…`` does (same swapped bytes), check its files against the architecture before anything runs, and stamp
its licence into every record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.records import read_records
from tests.cards_fixtures import (
    card_error,
    isolated_fixture,  # noqa: F401  (autouse: no licence consent, own cache)
)
from tests.face_assets import face_photos_fixture  # noqa: F401 - registers the fixture

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

ARCHITECTURE = "test_mobilefaceswap"

CARD = """schema = 1
id = "my_student"
family = "test"
description = "my distilled tiny student"
format = "safetensors"
architecture = "{architecture}"
[license]
id = "{license}"
commercial = {commercial}
[files.mobilefaceswap_pdparams]
path = "{student}"
sha256 = "{student_sha}"
[files.arcface_pdparams]
path = "id_net.safetensors"
"""


def _files(folder: Path) -> tuple[Path, Path]:
    """The tiny student's swap part (with distill's metadata) and id net, seeded."""
    from mfsbench.models.tiny import build_tiny_student

    torch.manual_seed(3)
    model = build_tiny_student()
    student, id_net = folder / "student.safetensors", folder / "id_net.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in model.swap.state_dict().items()}, str(student),
                                metadata={"student": ARCHITECTURE})
    id_state = {k: v.contiguous() for k, v in model.id_net.state_dict().items()}
    safetensors_torch.save_file(id_state, str(id_net))
    return student, id_net


def _card(folder: Path, *, architecture: str = ARCHITECTURE, student: str = "student.safetensors",
          license_id: str = "MIT", commercial: bool = True, extra: str = "") -> Path:
    card = folder / "my_student.toml"
    card.write_text(CARD.format(architecture=architecture, student=student, license=license_id,
                                commercial=str(commercial).lower(),
                                student_sha=sha256_file(folder / student)) + extra, encoding="utf-8")
    return card


@pytest.fixture
def weights(tmp_path: Path) -> tuple[Path, Path, Path]:
    student, id_net = _files(tmp_path)
    return _card(tmp_path), student, id_net


def test_bad_weights_cards_are_one_line(weights: tuple[Path, Path, Path], tmp_path: Path) -> None:
    card, student, _ = weights
    text = card.read_text()

    def edited(old: str, new: str) -> Path:
        assert old in text
        card.write_text(text.replace(old, new, 1))
        return card

    assert "`architecture` is missing" in card_error(edited(f'architecture = "{ARCHITECTURE}"\n', ""))
    assert "not a registered zoo model" in card_error(edited(ARCHITECTURE, "no_such_net"))
    assert "has no weights files to load" in card_error(edited(ARCHITECTURE, "test_frame_only"))
    assert "disagrees with architecture" in card_error(edited('family = "test"', 'family = "mobilefaceswap"'))
    assert "`io` does not apply" in card_error(edited("[license]", "[io]\ntarget = {}\n[license]"))
    assert "`files.arcface_pdparams` is missing" in card_error(edited(
        '[files.arcface_pdparams]\npath = "id_net.safetensors"\n', ""))
    assert "`files.simswap_G` is not a role" in card_error(edited(
        "[files.arcface_pdparams]",
        '[files.simswap_G]\npath = "id_net.safetensors"\n[files.arcface_pdparams]'))
    assert "`architecture` is for format = \"safetensors\"" in card_error(edited(
        'format = "safetensors"', 'format = "onnx"'))
    # a file that is not this role's: the id net under the student's role (names from the header only)
    card.write_text(text.replace(f'path = "student.safetensors"\nsha256 = "{sha256_file(student)}"',
                                 'path = "id_net.safetensors"'))
    assert "does not hold test_mobilefaceswap's mobilefaceswap_pdparams tensors" in card_error(card)
    # a distilled student of another architecture, a file that is not safetensors, a changed file
    other = tmp_path / "other.safetensors"
    safetensors_torch.save_file(safetensors_torch.load_file(str(student)), str(other),
                                metadata={"student": "mfs_no_weight_prediction"})
    other_card = _card(tmp_path, student=other.name)
    assert "holds a distilled mfs_no_weight_prediction student" in card_error(other_card)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    assert "is not a readable .safetensors file" in card_error(_card(tmp_path, student=junk.name))
    card = _card(tmp_path)
    student.write_bytes(student.read_bytes()[:-1] + b"\x01")
    assert "does not match `files.mobilefaceswap_pdparams.sha256`" in card_error(card)


@pytest.mark.cli
def test_weights_card_swaps_as_the_zoo_model_with_its_files(run_cli, weights, face_photos,
                                                              tmp_path: Path) -> None:
    card, student, id_net = weights
    checked = run_cli("card", "check", str(card))
    assert checked.code == 0, checked.err
    assert "architecture test_mobilefaceswap" in checked.out and "tensors loaded strictly" in checked.out
    source, target = str(face_photos["obama"].path), str(face_photos["biden"].path)
    by_card, by_flags, records = tmp_path / "card.png", tmp_path / "flags.png", tmp_path / "swap.jsonl"
    result = run_cli("swap", "--model", str(card), "--source", source, "--target", target,
                     "--out", str(by_card), "--records", str(records))
    assert result.code == 0, result.err
    zoo = run_cli("swap", "--model", ARCHITECTURE, "--source", source, "--target", target,
                  "--out", str(by_flags), "--checkpoint", str(student), "--checkpoint", str(id_net),
                  "--records", str(tmp_path / "z.jsonl"))
    assert zoo.code == 0, zoo.err
    assert by_card.read_bytes() == by_flags.read_bytes()  # the same network, the same weights
    record = read_records(records)[-1]
    assert record.model == "my_student" and record.info["random_weights"] is False
    assert record.info["license"] == "MIT" and record.info["card_format"] == "safetensors"
    assert record.info["architecture"] == ARCHITECTURE
    assert record.info["files"]["mobilefaceswap_pdparams"]["sha256"] == sha256_file(student)
    assert record.info["files"]["mobilefaceswap_pdparams"]["verified"] is True
    assert record.info["files"]["arcface_pdparams"]["verified"] is False  # no sha256 line for it
    both = run_cli("swap", "--model", str(card), "--source", source, "--target", target,
                   "--out", str(tmp_path / "x.png"), "--checkpoint", str(student))
    assert both.code == 2 and "drop --checkpoint" in both.err and len(both.err.strip().splitlines()) == 1


@pytest.mark.cli
def test_weights_card_counts_beside_other_models_under_its_licence(run_cli, weights, tmp_path: Path) -> None:
    card, _, _ = weights
    card.write_text(card.read_text().replace('id = "MIT"\ncommercial = true',
                                             'id = "CC-BY-NC-4.0"\ncommercial = false'))
    out = tmp_path / "flops"
    refused = run_cli("flops", "--models", str(card), "--out", str(out))
    assert refused.code == 2 and "--accept-license" in refused.err
    result = run_cli("flops", "--models", f"{card},{ARCHITECTURE}", "--out", str(out), "--format", "json",
                     "--accept-license")
    assert result.code == 0, result.err
    rows = {(r["model"], r["mode"]): r for r in json.loads(result.out)}
    for mode in ("image", "video"):  # the architecture's counts, under the requested convention
        mine, zoo = rows[("my_student", mode)], rows[(ARCHITECTURE, mode)]
        assert (mine["params_m"], mine["gmacs"]) == (zoo["params_m"], zoo["gmacs"])
        assert mine["convention"] == zoo["convention"] == "paper"
    counted = [r for r in read_records(out / "records.jsonl") if r.model == "my_student"]
    assert counted and all(r.info["license"] == "CC-BY-NC-4.0" for r in counted)


def test_device_cells_rebuild_the_architecture_with_the_cards_files(weights) -> None:
    """What a device cell runs: the sweep hands the card's files to the cell process, which rebuilds the
    *architecture* by name (a fresh process has no card registered) and loads them. The end-to-end
    ``device --models CARD`` run is in the README's measured section; it costs ~40 s of fixed sweep
    set-up, so the test goes through the same two functions instead."""
    from mfsbench.device.sweep import WeightsRef, build_frame_stage, weights_for
    from mfsbench.errors import BadInputError
    from mfsbench.registry import get_spec

    card, student, id_net = weights
    spec = get_spec(str(card))
    chosen = weights_for(spec, WeightsRef())
    assert chosen.seed is None and chosen.checkpoints == tuple(spec.weights_card.flags())
    parent, example, described = build_frame_stage(spec, spec.native_size, chosen)
    child, _, child_described = build_frame_stage(get_spec(spec.architecture), spec.native_size, chosen)
    assert described == child_described
    assert sha256_file(student) in described and sha256_file(id_net) in described
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(parent(*example), child(*example), strict=True))
    assert spec.card_record_info()["files"]["mobilefaceswap_pdparams"]["sha256"] == sha256_file(student)
    with pytest.raises(BadInputError, match="drop --checkpoint"):
        weights_for(spec, WeightsRef(seed=None, checkpoints=(str(student),)))


def test_quality_row_of_a_weights_card_loads_its_files(weights) -> None:
    """``quality --models CARD``: the row's weights are the card's files (by sha256, so another file is
    another row, never a cached one), and the row's model loads them as the evaluation does."""
    from types import SimpleNamespace

    from mfsbench.cli.quality import _rows
    from mfsbench.registry import create_model, get_spec
    from mfsbench.swap.checkpoints import load_checkpoints

    card, student, id_net = weights
    args = SimpleNamespace(models=[str(card)], checkpoint=[], runtime=None, allow_random_weights=False,
                           seed=0, video_mode=True, methods=["none"], root="unused")
    rows = [r for r in _rows(args, SimpleNamespace(methods=lambda: []), "c23") if r.model == str(card)]
    assert len(rows) == 1
    row = rows[0]
    assert row.weights == f"{sha256_file(student)}+{sha256_file(id_net)}"
    spec = get_spec(row.model)
    loaded = load_checkpoints(spec, create_model(spec.name), list(row.checkpoints))
    assert [c.sha256 for c in loaded] == [sha256_file(student), sha256_file(id_net)]


@pytest.mark.cli
def test_weights_card_in_a_cards_folder_is_listed_and_found_by_id(run_cli, weights,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    card, _, _ = weights
    monkeypatch.setenv("MFSBENCH_CARDS", str(card.parent))
    listed = run_cli("models", "--format", "json")
    assert listed.code == 0, listed.err
    row = next(r for r in json.loads(listed.out) if r["name"] == "my_student")
    assert (row["kind"], row["architecture"], row["license"]) == ("card", ARCHITECTURE, "MIT")
    assert row["stages"] == "identity+frame" and row["card"] == str(card)
    counted = run_cli("flops", "--models", "my_student", "--mode", "video", "--format", "json",
                      "--out", str(card.parent / "out"))
    assert counted.code == 0, counted.err
    assert [r["model"] for r in json.loads(counted.out)] == ["my_student"]


@pytest.mark.slow  # one ONNX export of the tiny student's frame stage (~5 s on 2 loaded cores)
def test_phone_export_of_a_weights_card_holds_its_files(weights, tmp_path: Path) -> None:
    """``device --adb --models CARD``: the file pushed to the phones is the export of the card's weights
    (named by their sha256 in its record, with the licence), not of seeded random ones."""
    pytest.importorskip("onnxscript")
    from device_runners.android.cli import export_models
    from mfsbench.registry import get_spec

    card, student, _ = weights
    spec = get_spec(str(card))
    (model,) = export_models([spec], None, "ort", tmp_path / "work")
    assert model.path.suffix == ".onnx" and model.path.is_file()
    assert sha256_file(student) in model.info["weights"] and "random" not in model.info["weights"]
    assert model.info["license"] == "MIT" and model.info["architecture"] == ARCHITECTURE
