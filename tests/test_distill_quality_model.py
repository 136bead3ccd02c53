"""The image-quality regressor Q (Eq. 4): ``mfsbench distill-quality`` and α = cos² × Q(teacher output).

The snapshots are synthetic: smooth random images whose added noise shrinks as the (fake) teacher
training progresses, the one property the paper's Q is meant to read. A tiny Q trained for a few
dozen steps must fit them better than at the start and rank late snapshots above early ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mfsbench.distill import config as cfg
from mfsbench.distill.objective import Batch, Parts, cosine, id_input, identity_alpha, teacher_view
from mfsbench.distill.quality import QualityNet, load_quality
from mfsbench.errors import BadInputError
from mfsbench.models.tiny import build_tiny_simswap, build_tiny_student

ITERATIONS = (1000, 2000, 3000, 4000, 5000)


def _snapshots(root: Path, per_iteration: int = 8) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    for iteration in ITERATIONS:
        folder = root / str(iteration)
        folder.mkdir(parents=True)
        noise = 80 * (1 - iteration / ITERATIONS[-1]) + 2
        for i in range(per_iteration):
            base = cv2.resize(rng.uniform(0, 255, (4, 4, 3)).astype(np.float32), (32, 32),
                              interpolation=cv2.INTER_CUBIC)
            image = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{i}.png"), image)
    return root


@pytest.fixture(scope="module")
def trained_q(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Q trained through the CLI on the synthetic snapshots; (weights, its record)."""
    from mfsbench.cli.main import main

    root = tmp_path_factory.mktemp("quality")
    snapshots = _snapshots(root / "snapshots")
    out = root / "q" / "Q.safetensors"
    code = main(["distill-quality", "--snapshots", str(snapshots), "--out", str(out), "--steps", "60",
                 "--batch-size", "16", "--lr", "3e-3", "--width", "8", "--size", "32"])
    assert code == 0
    records = [json.loads(line) for line in (out.parent / "records.jsonl").read_text().splitlines()]
    return out, records[-1]


def test_q_learns_progress_with_falling_l2(trained_q: tuple[Path, dict]) -> None:
    out, record = trained_q
    metrics, info = record["metrics"], record["info"]
    assert record["command"] == "distill-quality"
    assert metrics["loss_l2_last"] < 0.5 * metrics["loss_l2_first"], metrics
    assert info["layout"]["iterations"] == list(ITERATIONS) and info["layout"]["max_iteration"] == 5000
    scores = info["mean_score_per_iteration"]
    assert scores["5000"] > scores["3000"] > scores["1000"], scores
    assert metrics["spearman_progress"] > 0.7
    assert len(info["weights"]["sha256"]) == 64
    # the written file scores as the record says, through the loader the distiller uses
    q, entry = load_quality(str(out))
    import cv2

    late = cv2.imread(str(out.parent.parent / "snapshots" / "5000" / "0.png"))[:, :, ::-1].copy()
    early = cv2.imread(str(out.parent.parent / "snapshots" / "1000" / "0.png"))[:, :, ::-1].copy()
    pair = torch.from_numpy(np.stack([late, early])).permute(0, 3, 1, 2).float() / 255
    score = q(pair)
    assert float(score.min()) >= 0 and float(score.max()) <= 1 and score[0] > score[1]
    assert entry["role"] == "quality" and entry["width"] == 8
    assert not any(p.requires_grad for p in q.parameters())


def _shifted_q(trained: Path, out: Path, shift: float) -> Path:
    """The trained Q with its output moved by ``shift`` (fc bias), in distill-quality's file format."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(trained), "pt") as handle:
        meta = handle.metadata()
    state = load_file(str(trained))
    state["fc.bias"] = state["fc.bias"] + shift
    save_file(state, str(out), metadata=meta)
    return out


@pytest.mark.parametrize("shift", [-0.6, 5.0, -5.0])
def test_alpha_is_cos_squared_times_q(trained_q: tuple[Path, dict], tmp_path: Path, shift: float) -> None:
    """Q of the teacher output multiplies cos², clamped to [0, 1] (±5 pins it to 1 and 0)."""
    out = _shifted_q(trained_q[0], tmp_path / "Q.safetensors", shift)
    over = {"loss": {"perceptual_width": 4}, "model": {"allow_random_weights": True},
            "reweight": {"quality": "regressor", "quality_weights": str(out)}}
    config = cfg.resolve("paper", None, over)
    torch.manual_seed(0)
    student = build_tiny_student()
    teacher = build_tiny_simswap().eval()
    student.id_net.load_state_dict(teacher.id_net.state_dict())
    student.id_net.eval()
    q, _ = load_quality(str(out))
    gen = torch.Generator().manual_seed(3)
    batch = Batch(torch.rand(4, 3, 64, 64, generator=gen), torch.rand(4, 3, 64, 64, generator=gen),
                  torch.ones(4, 1, 64, 64), torch.zeros(4, dtype=torch.bool))
    parts = Parts(student, teacher, student.id_net, None, None, quality=q)
    with torch.no_grad():
        z_src = student.id_net(id_input(batch.source))[0]
        view = teacher_view(config, parts, batch, z_src)
        assert view.output is not None
        z_t = student.id_net(id_input(view.output))[0]
        raw = q.net(view.output)
    q_out = raw.clamp(0, 1)
    cos2 = identity_alpha(cosine(z_src, z_t))
    assert torch.allclose(view.alpha, cos2 * q_out, atol=1e-6)
    if shift == 5.0:
        assert bool((raw > 1).all()) and torch.allclose(view.alpha, cos2, atol=1e-6)
    if shift == -5.0:
        assert bool((raw < 0).all()) and not view.alpha.any()
    if shift == -0.6:
        assert bool(((q_out > 0) & (q_out < 1)).any()) and not torch.allclose(view.alpha, cos2)
    only_q = cfg.resolve("paper", None, {**over, "reweight": {**over["reweight"], "identity": False}})
    with torch.no_grad():
        assert torch.allclose(teacher_view(only_q, parts, batch, z_src).alpha, q_out, atol=1e-6)
    # Table 2's "w/o image-quality reweighting" now applies, and switches exactly Q off
    ablated = cfg.resolve("ablation:no_quality_reweighting", None, over)
    assert ablated["reweight"]["quality"] == "off"
    assert cfg.math_differences(config, ablated) == ["[reweight] quality: 'regressor' → 'off'"]
    with torch.no_grad():
        plain = teacher_view(ablated, parts, batch, z_src).alpha
    assert torch.allclose(plain, identity_alpha(cosine(z_src, z_t)), atol=1e-6)


def test_a_distill_step_weights_kd_by_q(trained_q: tuple[Path, dict], tmp_path: Path) -> None:
    """Through the trainer: Q is loaded (sha256 in the record), frozen, and its score is in α."""
    from mfsbench.distill.data import CropSet
    from mfsbench.distill.nets import build_nets
    from mfsbench.distill.trainer import Distiller

    out = _shifted_q(trained_q[0], tmp_path / "Q.safetensors", -0.6)
    over = {"model": {"teacher": "test_simswap", "student": "test_mobilefaceswap",
                      "allow_random_weights": True},
            "loss": {"perceptual_width": 4, "lambda_id": 0.0, "lambda_mask": 0.0, "lambda_adv": 0.0},
            "reweight": {"quality_weights": str(out), "quality": "regressor", "identity": False},
            "data": {"batch_size": 2, "hflip": False}}
    config = cfg.resolve("paper", None, over)
    crops = CropSet.__new__(CropSet)
    gen = torch.Generator().manual_seed(0)
    crops.train = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=gen)
    crops.heldout = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=gen)
    nets = build_nets(config)
    distiller = Distiller(config, nets, crops, tmp_path / "run")
    batch = distiller.batch(0)
    with torch.no_grad():
        teacher_out = nets.teacher(id_input(batch.source), batch.target)
        expected = nets.quality.net(teacher_out).clamp(0, 1)  # type: ignore[union-attr]
    entry = distiller.train_step()
    assert entry["alpha_mean"] == pytest.approx(float(expected.mean()), abs=1e-6)
    assert 0 < entry["alpha_mean"] < 1
    distiller.record("train", entry)
    record = json.loads((tmp_path / "run" / "records.jsonl").read_text().splitlines()[-1])
    loaded = next(w for w in record["info"]["weights"] if w["role"] == "quality")
    assert len(loaded["sha256"]) == 64 and record["info"]["config"]["reweight"]["quality"] == "regressor"


def test_quality_switches_refuse_what_cannot_apply(tmp_path: Path, run_cli) -> None:
    with pytest.raises(BadInputError, match="cannot apply"):
        cfg.resolve("ablation:no_quality_reweighting")
    with pytest.raises(BadInputError, match="quality_weights"):
        cfg.resolve("paper", None, {"reweight": {"quality": "regressor"}})
    with pytest.raises(BadInputError, match=r"off.*regressor"):
        cfg.resolve("paper", None, {"reweight": {"quality": "on"}})
    missing = run_cli("distill", "--teacher", "test_simswap", "--student", "test_mobilefaceswap",
                      "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--allow-random-weights",
                      "--quality-weights", str(tmp_path / "Q.safetensors"))
    assert missing.code == 2 and "not found" in missing.err and "distill-quality" in missing.err
    assert len(missing.err.strip().splitlines()) == 1
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file(QualityNet(4, 32).state_dict(), str(foreign))
    with pytest.raises(BadInputError, match="not written by"):
        load_quality(str(foreign))


def test_distill_quality_refuses_a_bad_layout(tmp_path: Path, run_cli) -> None:
    (tmp_path / "snap" / "final").mkdir(parents=True)
    out = str(tmp_path / "q.safetensors")
    bad = run_cli("distill-quality", "--snapshots", str(tmp_path / "snap"), "--out", out)
    assert bad.code == 2 and "not iteration numbers" in bad.err and len(bad.err.strip().splitlines()) == 1
    (tmp_path / "one" / "100").mkdir(parents=True)
    single = run_cli("distill-quality", "--snapshots", str(tmp_path / "one"), "--out", out)
    assert single.code == 2 and "at least two iteration folders" in single.err
