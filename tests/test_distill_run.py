"""``mfsbench distill`` end to end on real face crops with tiny nets (issue 18's CPU tests).

Random frozen networks (``--allow-random-weights``) never prove identity or FID; what they can prove is
that the student learns to imitate its teacher (held-out PSNR/L1 to the teacher), that runs are
reproducible, and that a resumed run is the same run, tensor for tensor.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mfsbench.distill import config as cfg
from mfsbench.distill.session import Session
from mfsbench.distill.trainer import Distiller
from mfsbench.errors import BadInputError
from tests.distill_faces import TEST_MIN_EYE_PX, write_face_folder
from tests.face_assets import face_photos_fixture  # noqa: F401

TINY = {"model": {"teacher": "test_simswap", "student": "test_mobilefaceswap", "allow_random_weights": True},
        "data": {"min_eye_distance_px": TEST_MIN_EYE_PX, "batch_size": 4},
        "loss": {"perceptual_width": 8}, "optim": {"lr": 3e-3},
        "run": {"log_every": 5, "eval_every": 1000, "ckpt_every": 1000, "eval_identity": False}}


@pytest.fixture(scope="module")
def faces(face_photos: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(photo folder, aligned-crop cache): faces are detected once for the whole module."""
    root = tmp_path_factory.mktemp("distill_faces")
    return write_face_folder(face_photos, root / "photos"), root / "cache"


def _config(preset: str = "kd_only", **sections: dict) -> dict:
    over = {k: dict(v) for k, v in TINY.items()}
    for section, values in sections.items():
        over.setdefault(section, {}).update(values)
    return cfg.resolve(preset, None, over)


def _session(config: dict, faces: tuple[Path, Path], out: Path, preset: str = "kd_only") -> Session:
    return Session(config, preset, faces[0], out, cache=faces[1])


def _trained_history(session: Session) -> list[dict[str, float]]:
    return [{k: v for k, v in e.items() if k != "step_s"} for e in session.distiller.history]


@pytest.mark.slow
def test_kd_only_student_learns_its_teacher(faces: tuple[Path, Path], tmp_path: Path) -> None:
    """The issue's acceptance: 40 KD-only steps raise held-out PSNR ≥ 2 dB and cut L1 ≥ 25 %."""
    session = _session(_config(run={"steps": 40, "eval_identity": True}), faces, tmp_path / "run")
    session.start(None)
    first, last = session.distiller.evals[0], session.distiller.evals[-1]
    # identity by an evaluator that is not the training ArcFace (dlib's descriptor): a number per eval,
    # the teacher's constant over the run, and a crop against itself at 1
    assert all(-1 <= e["id_cos_student"] <= 1 for e in (first, last))
    assert first["id_cos_teacher"] == last["id_cos_teacher"]
    source, _target = session.distiller._eval_pairs()
    assert float(session.distiller._id_eval.cosines(source, source).min()) > 0.999
    assert len(session.crops.heldout) == 16 and len(session.crops) >= 32
    assert last["psnr_db"] - first["psnr_db"] >= 2.0, (first, last)
    assert last["l1"] <= 0.75 * first["l1"], (first, last)
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records].count("eval") == 2
    train = [r for r in records if r["stage"] == "train"]
    assert len(train) == 8 and train[0]["info"]["random_weights"] == ["teacher", "id_net", "vgg"]
    assert train[0]["info"]["config_sources"]["loss.lambda_rec"] == "paper"
    assert {"time_teacher_s", "time_backward_s", "time_data_s", "alpha_mean", "grad_norm", "loss_rec",
            "loss_per"} <= set(train[0]["metrics"])
    assert (tmp_path / "run" / "samples" / "step_00000040.png").is_file()


@pytest.mark.slow
def test_beyond_paper_losses_train_and_are_labelled(faces: tuple[Path, Path], tmp_path: Path) -> None:
    """OMGD's SSIM/style, CAT's kernel alignment and face-region KD, through a real (short) run."""
    extras = {"lambda_ssim": 10.0, "lambda_style": 1e4, "lambda_feature": 1.0, "kd_region": "face"}
    session = _session(_config(run={"steps": 5}, loss=extras), faces, tmp_path / "run")
    session.start(None)
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    train = [r for r in records if r["stage"] == "train"]
    assert train and {"loss_ssim", "loss_style", "loss_feature", "loss_rec"} <= set(train[-1]["metrics"])
    assert all(math.isfinite(v) for k, v in train[-1]["metrics"].items() if k.startswith("loss_"))
    sources = train[-1]["info"]["config_sources"]
    assert {sources[f"loss.{k}"] for k in extras} == {"beyond"}


@pytest.mark.slow
def test_same_seed_gives_the_same_history(faces: tuple[Path, Path], tmp_path: Path) -> None:
    config = _config(run={"steps": 4})
    runs = []
    for name in ("a", "b"):
        session = _session(config, faces, tmp_path / name)
        session.start(None)
        runs.append((_trained_history(session), session.distiller.evals))
    assert runs[0] == runs[1]


def _state_tensors(path: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(path, weights_only=True)
    flat: dict[str, torch.Tensor] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, torch.Tensor):
            flat[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)

    for key in ("student", "disc", "opt", "d_opt"):
        walk(key, payload[key])
    return flat


@pytest.mark.slow
def test_resume_is_bit_identical(faces: tuple[Path, Path], tmp_path: Path) -> None:
    """20 steps straight == 10 + resume + 10, tensor for tensor (student, D, both optimisers)."""
    sections = {"loss": {"lambda_adv": 1.0, "lambda_mask": 10.0}, "data": {"batch_size": 2},
                "run": {"steps": 20, "ckpt_every": 10}}
    straight = _session(_config(**sections), faces, tmp_path / "straight")
    straight.start(None)
    half = dict(sections, run={"steps": 10, "ckpt_every": 10})
    _session(_config(**half), faces, tmp_path / "resumed").start(None)
    resumed = _session(_config(**sections), faces, tmp_path / "resumed")
    resumed.start("auto")
    a = _state_tensors(tmp_path / "straight" / "checkpoints" / "ckpt-00000020.pt")
    b = _state_tensors(tmp_path / "resumed" / "checkpoints" / "ckpt-00000020.pt")
    assert a.keys() == b.keys() and any(k.startswith("disc.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _trained_history(straight) == _trained_history(resumed)


@pytest.mark.slow
def test_resume_refuses_a_changed_objective_and_ctrl_c_saves(faces: tuple[Path, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    original = Distiller.train_step

    def interrupted(self: Distiller) -> dict[str, float]:
        if self.step == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Distiller, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _session(_config(run={"steps": 5}), faces, out).start(None)
    assert (out / "checkpoints" / "ckpt-00000002.pt").is_file()
    monkeypatch.setattr(Distiller, "train_step", original)
    with pytest.raises(BadInputError, match="already holds a run"):
        _session(_config(run={"steps": 5}), faces, out).start(None)
    with pytest.raises(BadInputError, match=r"\[loss\] lambda_rec: 30.0 → 20.0"):
        _session(_config(loss={"lambda_rec": 20.0}, run={"steps": 5}), faces, out).start("auto")
    session = _session(_config(run={"steps": 3}), faces, out)
    session.start("auto")
    assert session.distiller.step == 3


@pytest.mark.slow
def test_cli_refuses_random_weights_then_trains_and_exports(faces: tuple[Path, Path], tmp_path: Path,
                                                            run_cli) -> None:
    base = ("distill", "--teacher", "test_simswap", "--student", "test_mobilefaceswap",
            "--data", str(faces[0]), "--cache", str(faces[1]), "--min-eye-distance", str(TEST_MIN_EYE_PX),
            "--preset", "kd_only")
    refused = run_cli(*base, "--out", str(tmp_path / "r"), "--steps", "2")
    assert refused.code == 2 and "--allow-random-weights" in refused.err
    toml = tmp_path / "small.toml"
    toml.write_text("[loss]\nperceptual_width = 8\n[run]\nlog_every = 1\n")
    done = run_cli(*base, "--out", str(tmp_path / "ok"), "--steps", "2", "--batch-size", "2",
                   "--config", str(toml), "--allow-random-weights")
    assert done.code == 0, done.err
    assert "held-out PSNR to teacher" in done.out
    from safetensors.torch import load_file

    from mfsbench.models.tiny import build_tiny_student

    student = build_tiny_student()
    student.swap.load_state_dict(load_file(str(tmp_path / "ok" / "student.safetensors")))
    records = [json.loads(line) for line in (tmp_path / "ok" / "records.jsonl").read_text().splitlines()]
    assert all(r["info"]["random_weights"] for r in records)
    assert all(r["info"]["preset"] == "kd_only" for r in records)
