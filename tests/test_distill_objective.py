"""The distillation objective (Eq. 3–7), its switches, α and the config (issue 18, deliverables 2–3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from mfsbench.distill import config as cfg
from mfsbench.distill.data import background_mask
from mfsbench.distill.discriminator import PatchDiscriminator
from mfsbench.distill.objective import Batch, Parts, id_input, identity_alpha, objective, teacher_view
from mfsbench.distill.vgg import VGG16Features, perceptual_per_sample
from mfsbench.errors import BadInputError
from mfsbench.models.tiny import build_tiny_simswap, build_tiny_student


class Counting(nn.Module):
    """Wraps a network and counts its calls (to prove a switched-off term runs nothing)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, *args: Tensor) -> Any:
        self.calls += 1
        return self.inner(*args)


def _config(preset: str = "paper", **loss: float) -> dict:
    over: dict = {"loss": {"perceptual_width": 4, **loss}, "model": {"allow_random_weights": True}}
    return cfg.resolve(preset, None, over)


def _setup(config: dict) -> tuple[Parts, Batch, Counting]:
    torch.manual_seed(0)
    student = build_tiny_student()
    student.swap.train()
    teacher = build_tiny_simswap().eval()
    student.id_net.load_state_dict(teacher.id_net.state_dict())
    student.id_net.eval()
    counted = Counting(teacher)
    vgg = VGG16Features(config["loss"]["perceptual_layers"], 4).eval()
    disc = PatchDiscriminator(8, 2)
    gen = torch.Generator().manual_seed(3)
    batch = Batch(torch.rand(4, 3, 64, 64, generator=gen), torch.rand(4, 3, 64, 64, generator=gen),
                  background_mask(64).expand(4, -1, -1, -1), torch.tensor([True, True, False, False]))
    return Parts(student, counted, student.id_net, vgg, disc), batch, counted


def _terms(preset: str) -> tuple[dict[str, float], Tensor, int]:
    config = _config(preset)
    parts, batch, counted = _setup(config)
    _, terms, extras = objective(config, parts, batch)
    return {k: float(v.detach()) for k, v in terms.items()}, extras["alpha"], counted.calls


def test_paper_objective_has_every_term() -> None:
    terms, alpha, calls = _terms("paper")
    assert set(terms) == {"rec", "per", "id", "mask", "adv"}
    assert calls == 1
    assert alpha.shape == (4,) and ((alpha >= 0) & (alpha <= 1)).all()


@pytest.mark.parametrize(("ablation", "removed"), [
    ("no_identity_loss", {"id"}),
    ("no_mask_loss", {"mask"}),
])
def test_each_switch_removes_exactly_its_term(ablation: str, removed: set[str]) -> None:
    paper, _, _ = _terms("paper")
    ablated, _, _ = _terms(f"ablation:{ablation}")
    assert set(paper) - set(ablated) == removed
    for key in ablated:
        assert ablated[key] == pytest.approx(paper[key], abs=0), key


def test_no_identity_reweighting_sets_alpha_to_one_and_keeps_the_terms() -> None:
    paper, alpha_paper, _ = _terms("paper")
    ablated, alpha, _ = _terms("ablation:no_identity_reweighting")
    assert torch.equal(alpha, torch.ones(4))
    assert not torch.equal(alpha_paper, torch.ones(4))
    assert ablated == paper  # unweighted terms unchanged: only their weight α differs


def test_no_kd_never_runs_the_teacher() -> None:
    terms, alpha, calls = _terms("ablation:no_kd")
    assert calls == 0
    assert torch.equal(alpha, torch.ones(4))
    assert {"rec", "per"} <= set(terms)  # now against the target, on same-identity rows


def test_weighted_total_is_eq7() -> None:
    config = _config("paper")
    parts, batch, _ = _setup(config)
    total, terms, extras = objective(config, parts, batch)
    # recompute Eq. 7 by hand from per-sample KD terms
    out, teacher = extras["output"], parts.teacher(id_input(batch.source), batch.target)
    rec = (out - teacher).abs().flatten(1).mean(1)
    per = perceptual_per_sample(parts.vgg(out), parts.vgg(teacher))
    expected = (extras["alpha"] * (30 * rec + 5 * per)).mean() + 3 * terms["id"] + 10 * terms["mask"] \
        + terms["adv"]
    assert float(total) == pytest.approx(float(expected), rel=1e-5)


def test_alpha_is_the_clamped_squared_cosine() -> None:
    got = identity_alpha(torch.tensor([0.6, -0.3, 1.0, 0.0]))
    assert torch.allclose(got, torch.tensor([0.36, 0.0, 1.0, 0.0]))
    assert torch.allclose(identity_alpha(torch.tensor([-0.5]), clamp_negative=False), torch.tensor([0.25]))


def test_alpha_from_hand_made_embeddings_carries_no_gradient() -> None:
    class FixedEmbedding(nn.Module):
        def forward(self, x: Tensor) -> tuple[Tensor, None]:
            return torch.tensor([[0.6, 0.8], [-0.6, 0.8]], requires_grad=True), None

    class Echo(nn.Module):
        def forward(self, source: Tensor, target: Tensor) -> Tensor:
            return target

    config = _config("paper")
    parts = Parts(build_tiny_student(), Echo(), FixedEmbedding(), None, None)
    background = background_mask(64).expand(2, -1, -1, -1)
    same = torch.zeros(2, dtype=torch.bool)
    batch = Batch(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), background, same)
    view = teacher_view(config, parts, batch, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert torch.allclose(view.alpha, torch.tensor([0.36, 0.0]))
    assert not view.alpha.requires_grad


def test_mask_loss_trains_only_the_mask_head() -> None:
    config = _config("paper", lambda_rec=0.0, lambda_per=0.0, lambda_id=0.0, lambda_adv=0.0)
    parts, batch, calls = _setup(config)
    total, terms, extras = objective(config, parts, batch)
    assert set(terms) == {"mask"} and calls.calls == 0
    grad_mask = torch.autograd.grad(terms["mask"], extras["mask"], retain_graph=True)[0]
    foreground = batch.background == 0
    assert grad_mask[foreground].abs().max() == 0 and grad_mask[~foreground].abs().min() > 0
    total.backward()
    for name, p in parts.student.swap.named_parameters():
        if name.startswith("mask."):
            continue
        assert p.grad is None or p.grad.abs().max() == 0, name
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in parts.student.swap.mask.parameters())


def test_config_unknown_key_and_bad_type_are_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[loss]\nlambda_idd = 3\n")
    with pytest.raises(BadInputError, match="unknown key \\[loss\\] lambda_idd"):
        cfg.resolve("paper", bad)
    bad.write_text("[optim]\nlr = 'fast'\n")
    with pytest.raises(BadInputError, match="must be a number"):
        cfg.resolve("paper", bad)
    with pytest.raises(BadInputError, match="unknown preset"):
        cfg.resolve("ablation:no_everything")


def test_switches_that_cannot_apply_are_errors() -> None:
    with pytest.raises(BadInputError, match="cannot apply"):
        cfg.resolve("ablation:no_quality_reweighting")
    with pytest.raises(BadInputError, match="quality regressor"):
        cfg.resolve("paper", None, {"reweight": {"quality": "regressor"}})
    with pytest.raises(BadInputError, match="cache_teacher"):
        cfg.resolve("paper", None, {"perf": {"cache_teacher": True}})


def test_printed_config_round_trips_and_marks_sources(tmp_path: Path) -> None:
    path = tmp_path / "all.toml"
    path.write_text(cfg.describe())
    assert cfg.resolve("paper", path) == cfg.resolve("paper")
    sources = cfg.sources(cfg.resolve("paper"))
    assert sources["loss.lambda_rec"] == "paper" and sources["optim.lr"] == "ours"
    assert {cfg.SCHEMA["loss"][k].default for k in ("lambda_rec", "lambda_per", "lambda_id", "lambda_mask",
                                                    "lambda_adv")} == {30.0, 5.0, 3.0, 10.0, 1.0}


def test_math_keys_decide_resume() -> None:
    a = cfg.resolve("paper")
    b = cfg.resolve("paper", None, {"run": {"steps": 5}, "perf": {"device": "cpu"}})
    c = cfg.resolve("paper", None, {"loss": {"lambda_id": 2.0}})
    assert cfg.math_hash(a) == cfg.math_hash(b)
    assert cfg.math_hash(a) != cfg.math_hash(c)
    assert cfg.math_differences(a, c) == ["[loss] lambda_id: 3.0 → 2.0"]
