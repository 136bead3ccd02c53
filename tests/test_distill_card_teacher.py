"""``mfsbench distill --teacher CARD.toml``: a model card as the teacher, in ONNX Runtime (issue 18 item 1).

The teacher card is the zoo's tiny student exported with one source identity injected (its ONNX graph
has no identity input), so the card teacher can be compared with the torch network it came from: on
the same aligned crops, :class:`~mfsbench.distill.card_teacher.CardTeacher` must give the torch frame
stage's output within fp32 parity. Then ``mfsbench distill`` trains from that card end to end, its
records name the card (id, sha256, runtime, licence), and the two refusals are one line each, rc 2:
a non-commercial card without ``--accept-license``, and crops aligned with a template a card's crop
cannot be derived from.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cards_fixtures import no_consent, write_student_card  # noqa: F401 - no_consent: no licence consent
from tests.distill_faces import TEST_MIN_EYE_PX, write_face_folder
from tests.face_assets import face_photos_fixture  # noqa: F401 - registers the fixture

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

STUDENT = "test_mobilefaceswap"
#: fp32 parity between ONNX Runtime and torch on outputs in [0, 1]
TOLERANCE = 1e-4

@pytest.fixture(scope="module")
def teacher_card(face_photos: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny student's injected frame stage exported once to ONNX, with two cards for it (MIT, and
    a non-commercial licence), plus the torch frame network it came from."""
    from mfsbench.export.onnx import export_onnx
    from mfsbench.export.stages import FlatOutputs
    from mfsbench.faces.detectors import get_detector, read_image
    from mfsbench.registry import create_model, get_spec
    from mfsbench.swap.runners import TorchRunner

    folder = tmp_path_factory.mktemp("card_teacher")
    spec = get_spec(STUDENT)
    torch.manual_seed(0)
    zoo = TorchRunner(spec, create_model(STUDENT), spec.native_size)
    source = read_image(face_photos["biden"].path)
    zoo.inject(zoo.align_source(source, get_detector("dlib").detect(source)[0].landmarks5))
    frame = copy.deepcopy(zoo.frame_net).to(memory_format=torch.contiguous_format).eval()
    if hasattr(frame, "inplace_activations"):
        frame.inplace_activations = False
    size = spec.native_size
    example = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    path = folder / "student_frame.onnx"
    export_onnx(FlatOutputs(frame), [example], path, ["target"], ["output_0", "output_1"], optimize=False)
    cards = {name: write_student_card(folder / f"teacher_{name}.toml", path, size=size,
                                      card_id=f"distill_teacher_{name}", license_id=license_id,
                                      commercial=commercial,
                                      description="the tiny zoo student's frame stage with one source "
                                                  "identity injected (distill teacher test)")
             for name, license_id, commercial in (("mit", "MIT", True), ("nc", "CC-BY-NC-4.0", False))}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"cards": cards, "frame": frame, "size": size, "sha256": digest}


@pytest.fixture(scope="module")
def faces(face_photos: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("card_distill_faces")
    return write_face_folder(face_photos, root / "photos"), root / "cache"


def _crops(face_photos: dict, size: int) -> torch.Tensor:
    """Real faces aligned as the distill cache aligns them (``arcface`` at the student's size), RGB [0, 1]."""
    from mfsbench.faces.align import align
    from mfsbench.faces.detectors import get_detector, read_image

    detector, crops = get_detector("dlib"), []
    for name in ("obama2", "biden", "obama2"):
        image = read_image(face_photos[name].path)
        crop, _ = align(image, detector.detect(image)[0].landmarks5, "arcface", size)
        crops.append(torch.from_numpy(crop[:, :, ::-1].astype(np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(crops)


@pytest.mark.slow  # the ONNX export of the fixture takes 5-12 s on 2 loaded cores
def test_card_teacher_equals_the_torch_network_it_was_exported_from(teacher_card: dict, face_photos: dict,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from mfsbench.distill.card_teacher import CardTeacher
    from mfsbench.distill.objective import run_teacher
    from mfsbench.registry import get_spec

    spec = get_spec(str(teacher_card["cards"]["mit"]))
    teacher = CardTeacher(spec, [], allow_random=True, seed=1, student_size=teacher_card["size"],
                          data_align="arcface")
    assert teacher.to_card is None and not teacher.reads_identity  # same frame; identity baked in
    target = _crops(face_photos, teacher_card["size"])
    source = target.roll(1, dims=0)
    got = run_teacher(teacher, source, target)
    with torch.no_grad():
        want = teacher_card["frame"](target)[0]
    assert got.shape == want.shape == target.shape
    assert float((got - want).abs().max()) <= TOLERANCE
    assert float((got - target).abs().max()) > 0.05  # it swaps: not the target handed back
    info = teacher.describe()
    assert info["kind"] == "card" and info["runtime"] == "onnxruntime"
    assert info["sha256"] == teacher_card["sha256"] and info["license"] == "MIT"
    assert len(teacher.cache_key) == 64


@pytest.mark.slow
def test_distill_trains_from_a_card_and_its_records_name_it(teacher_card: dict, faces: tuple[Path, Path],
                                                            tmp_path: Path, run_cli) -> None:
    base = ("distill", "--teacher", str(teacher_card["cards"]["nc"]), "--student", STUDENT,
            "--data", str(faces[0]), "--cache", str(faces[1]), "--min-eye-distance", str(TEST_MIN_EYE_PX),
            "--preset", "kd_only")
    refused = run_cli(*base, "--out", str(tmp_path / "r"), "--steps", "2", "--allow-random-weights")
    assert refused.code == 2 and "--accept-license" in refused.err and "CC-BY-NC-4.0" in refused.err
    assert len(refused.err.strip().splitlines()) == 1 and "Traceback" not in refused.err
    assert not (tmp_path / "r").exists()  # refused before any work
    toml = tmp_path / "small.toml"
    toml.write_text("[loss]\nperceptual_width = 8\n[run]\nlog_every = 1\neval_identity = false\n"
                    "[perf]\ncache_teacher = true\n[data]\npairs = \"fixed\"\nhflip = false\n")
    done = run_cli(*base, "--out", str(tmp_path / "ok"), "--steps", "3", "--batch-size", "2",
                   "--config", str(toml), "--allow-random-weights", "--accept-license")
    assert done.code == 0, done.err
    assert "held-out PSNR to teacher" in done.out
    records = [json.loads(line) for line in (tmp_path / "ok" / "records.jsonl").read_text().splitlines()]
    train = [r for r in records if r["stage"] == "train"]
    assert len(train) == 3 and {r["stage"] for r in records} == {"train", "eval"}
    for record in records:
        card = record["info"]["teacher_card"]
        assert card["kind"] == "card" and card["runtime"] == "onnxruntime"
        assert card["card_id"] == "distill_teacher_nc" and card["sha256"] == teacher_card["sha256"]
        assert card["license"] == "CC-BY-NC-4.0" and card["license_commercial"] is False
        assert record["info"]["teacher"] == "distill_teacher_nc"
        assert {"role": "teacher", "sha256": teacher_card["sha256"], "license": "CC-BY-NC-4.0"}.items() <= \
            next(w for w in record["info"]["weights"] if w["role"] == "teacher").items()
        assert "id_net" in record["info"]["random_weights"]
    assert train[-1]["metrics"]["time_teacher_s"] >= 0 and train[0]["metrics"]["loss_rec"] > 0
    assert train[-1]["info"]["pair_cache"]["pairs"] > 0  # the card's outputs were cached per pair
    assert (tmp_path / "ok" / "student.safetensors").is_file()


@pytest.mark.slow  # the module's card fixture exports ONNX
def test_distill_refuses_a_card_on_crops_it_cannot_be_fed(teacher_card: dict, faces: tuple[Path, Path],
                                                         tmp_path: Path, run_cli) -> None:
    """SimSwap's multi-pose alignment picks one of five templates per face and the cache keeps no
    landmarks: the card's crop cannot be made from such a crop. Refused before any detection."""
    toml = tmp_path / "simswap.toml"
    toml.write_text("[data]\nalign = \"simswap\"\n")
    refused = run_cli("distill", "--teacher", str(teacher_card["cards"]["mit"]), "--student", STUDENT,
                      "--data", str(faces[0]), "--cache", str(tmp_path / "cache"),
                      "--out", str(tmp_path / "o"),
                      "--config", str(toml), "--steps", "1", "--allow-random-weights")
    assert refused.code == 2, refused.err
    assert len(refused.err.strip().splitlines()) == 1 and "Traceback" not in refused.err
    assert "align" in refused.err and "arcface" in refused.err
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow  # the module's card fixture exports ONNX
def test_a_card_on_another_template_is_fed_and_read_back_through_the_template_warp(
        teacher_card: dict, face_photos: dict) -> None:
    """A card whose template is the student's shifted 8 px right (a whole-pixel warp, so bilinear
    resampling is exact): its crop is the target shifted right with the border replicated, its output
    comes back shifted left, and the columns its crop does not cover keep the target."""
    from mfsbench.distill.card_teacher import CardTeacher
    from mfsbench.faces.align import ARCFACE_TEMPLATE_112
    from mfsbench.registry import get_spec

    size, shift = teacher_card["size"], 8
    mit = teacher_card["cards"]["mit"]
    points = (ARCFACE_TEMPLATE_112 / 112.0 + np.array([shift / size, 0.0])).tolist()
    text = mit.read_text(encoding="utf-8").replace('template = "arcface_112_v2"', f"template = {points}")
    card = mit.with_name("teacher_shifted.toml")
    card.write_text(text.replace('id = "distill_teacher_mit"', 'id = "distill_teacher_shifted"'),
                    encoding="utf-8")
    teacher = CardTeacher(get_spec(str(card)), [], allow_random=True, seed=1, student_size=size,
                          data_align="arcface")
    assert teacher.to_card is not None
    target = _crops(face_photos, size)
    got = teacher(target.roll(1, dims=0), target)
    shifted = torch.cat([target[..., :1].expand(-1, -1, -1, shift), target[..., :-shift]], dim=-1)
    with torch.no_grad():
        card_out = teacher_card["frame"](shifted)[0]
    assert float((got[..., :-shift] - card_out[..., shift:]).abs().max()) <= TOLERANCE
    assert float((got[..., -shift:] - target[..., -shift:]).abs().max()) <= 1e-6
    assert teacher.describe()["template"] == "custom 5-point"


def test_the_teacher_maps_the_students_crop_with_the_cards_own_fit(teacher_card: dict) -> None:
    """A card template stretched 25 % in width is not a similarity of the student's: with ``[target.warp]
    fit = "affine"`` the student's template points land on the card's exactly (as the swap pipeline's
    6-DoF fit of the same landmarks would put them); with the default similarity fit they cannot."""
    from mfsbench.distill.card_teacher import CardTeacher
    from mfsbench.faces.align import ARCFACE_TEMPLATE_112, template_for
    from mfsbench.registry import get_spec

    size = teacher_card["size"]
    mit = teacher_card["cards"]["mit"]
    stretched = ARCFACE_TEMPLATE_112 / 112.0
    stretched = np.column_stack([0.5 + (stretched[:, 0] - 0.5) * 1.25, stretched[:, 1]])
    text = mit.read_text(encoding="utf-8").replace('template = "arcface_112_v2"',
                                                   f"template = {stretched.tolist()}")
    student = np.column_stack([template_for("arcface", size), np.ones(5)])
    misses = {}
    for fit in ("affine", "similarity"):
        card = mit.with_name(f"teacher_stretched_{fit}.toml")
        card.write_text(text.replace('id = "distill_teacher_mit"', f'id = "distill_teacher_{fit}"')
                        + f'[target.warp]\nfit = "{fit}"\n', encoding="utf-8")
        teacher = CardTeacher(get_spec(str(card)), [], allow_random=True, seed=1, student_size=size,
                              data_align="arcface")
        assert teacher.to_card is not None
        misses[fit] = float(np.abs(student @ teacher.to_card.T - teacher.runner.points).max())
    assert misses["affine"] < 1e-6
    assert misses["similarity"] > 0.5  # pixels


@pytest.mark.slow  # a random-weight ResNet-50 identity encoder: ~0.6 s a source on one loaded core
def test_a_card_teacher_runs_its_identity_encoder_once_per_distinct_source(face_photos: dict,
                                                                          tmp_path: Path) -> None:
    """inswapper's card reads an embedding from a ResNet-50 encoder: three rows of two distinct faces,
    stepped twice, run it twice in all, and the swaps equal a fresh teacher's (the reuse is exact)."""
    from mfsbench.cards import license as card_license
    from mfsbench.distill.card_teacher import CardTeacher
    from mfsbench.registry import get_spec
    from tests.cards_fixtures import example_card

    card_license.accept_licenses()
    spec = get_spec(str(example_card(tmp_path / "models")))

    def teacher() -> CardTeacher:
        return CardTeacher(spec, [], allow_random=True, seed=1, student_size=64, data_align="arcface")

    crops = _crops(face_photos, 64)  # obama2, biden, obama2
    reused = teacher()
    assert reused.reads_identity
    reused(crops, crops)
    again = reused(crops.roll(1, dims=0), crops)
    assert reused.identity_runs == 2 and reused.calls == 6
    assert torch.equal(again, teacher()(crops.roll(1, dims=0), crops))


def test_the_card_key_reaches_the_pair_cache_stamp_and_resume() -> None:
    """An edited card (another ``cache_key``) empties the teacher cache and refuses ``--resume``; a torch
    teacher (no ``cache_key``) is unaffected by the resume check."""
    from types import SimpleNamespace

    from torch import nn

    from mfsbench.distill.pair_cache import Dependencies
    from mfsbench.distill.trainer import Distiller
    from mfsbench.errors import BadInputError

    teacher = nn.Module()
    teacher.cache_key = "a" * 64
    config = {"model": {"teacher": "card.toml"}, "data": {}, "loss": {}, "reweight": {},
              "run": {"seed": 0}, "perf": {"precision": "fp32"}}
    crops = torch.zeros(2, 3, 4, 4)
    depends = Dependencies(lambda: [teacher], lambda: crops, config)
    before = depends.stamp()
    assert depends.stamp() == before
    teacher.cache_key = "b" * 64
    assert depends.stamp() != before

    fake = SimpleNamespace(nets=SimpleNamespace(teacher=teacher), config=config)
    with pytest.raises(BadInputError, match=r"teacher card card\.toml .* changed"):
        Distiller.restore(fake, {"teacher_key": "a" * 64})  # type: ignore[arg-type]
    torch_teacher = SimpleNamespace(nets=SimpleNamespace(teacher=nn.Module(), student=None), config=config)
    # a torch teacher passes the card check and fails only later, at the (absent) student
    with pytest.raises(AttributeError, match="swap"):
        Distiller.restore(torch_teacher, {})  # type: ignore[arg-type]
