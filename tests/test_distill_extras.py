"""The opt-in losses beyond the paper (issue 18 item 2): OMGD's SSIM and style, CAT's kernel alignment,
content-aware (face-region) KD. Each is off by default, computed only when on, and correct on cases
with a known answer."""

from __future__ import annotations

import pytest
import torch

from mfsbench.distill import config as cfg
from mfsbench.distill.data import background_mask
from mfsbench.distill.extras import (
    SSIM_C1,
    feature_ka_loss,
    find_layers,
    gram,
    kernel_alignment,
    masked_l1,
    ssim_per_sample,
    style_per_sample,
)
from mfsbench.distill.objective import Batch, Parts, objective
from mfsbench.errors import BadInputError
from mfsbench.models.tiny import build_tiny_simswap
from tests.test_distill_objective import _setup as objective_setup

EXTRAS = {"lambda_ssim": 10.0, "lambda_style": 1e4, "lambda_feature": 1.0}


def _config(**loss: object) -> dict:
    over: dict = {"loss": {"perceptual_width": 4, **loss}, "model": {"allow_random_weights": True},
                  "data": {"batch_size": 4}}
    return cfg.resolve("paper", None, over)


def _setup(config: dict) -> tuple[Parts, Batch]:
    parts, batch, _counted = objective_setup(config)  # the objective tests' tiny nets and batch
    return parts, batch


def test_extras_are_off_by_default_and_leave_the_paper_run_unchanged() -> None:
    config = _config()
    assert all(config["loss"][k] == 0 for k in EXTRAS) and config["loss"]["kd_region"] == "full"
    sources = cfg.sources(config)
    assert {sources[f"loss.{k}"] for k in [*EXTRAS, "kd_region", "feature_teacher_layers"]} == {"beyond"}
    # a run from before these keys existed hashes (and so resumes) as it did: off extras are not in it
    assert not any(k in cfg.math_view(config)["loss"] for k in [*EXTRAS, "kd_region"])
    assert cfg.math_hash(config) != cfg.math_hash(_config(lambda_ssim=1.0))
    parts, batch = _setup(config)
    _, terms, _ = objective(config, parts, batch)
    assert not {"ssim", "style", "feature"} & set(terms)


def test_each_extra_adds_its_term_and_trains_the_student() -> None:
    config = _config(**EXTRAS)
    parts, batch = _setup(config)
    total, terms, _ = objective(config, parts, batch)
    assert {"ssim", "style", "feature"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    assert 0 < float(terms["ssim"].detach()) < 2 and 0 <= float(terms["feature"].detach()) <= 1
    total.backward()
    grads = [p.grad for p in parts.student.swap.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in parts.teacher.parameters())  # the teacher stays frozen


def test_ssim_known_values() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 32, 32, generator=gen)
    assert torch.allclose(ssim_per_sample(image, image), torch.ones(2), atol=1e-6)
    # two flat images: the contrast-structure factor is C2/C2 = 1, luminance is (2uv + C1)/(u² + v² + C1)
    u, v = 0.01, 0.03  # dark, so that C1 matters: 0.636 with it, 0.600 without
    flat = ssim_per_sample(torch.full((1, 3, 16, 16), u, dtype=torch.float64),
                           torch.full((1, 3, 16, 16), v, dtype=torch.float64))
    assert float(flat) == pytest.approx((2 * u * v + SSIM_C1) / (u * u + v * v + SSIM_C1), rel=1e-9)
    noisy = (image + 0.2 * torch.randn(image.shape, generator=gen)).clamp(0, 1)
    assert (ssim_per_sample(image, noisy) < 0.9).all()
    assert torch.allclose(ssim_per_sample(image, noisy), ssim_per_sample(noisy, image), atol=1e-6)


def test_kernel_alignment_known_values() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 40, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(40, 40, generator=gen))
    assert float(kernel_alignment(x, 3.0 * x)) == pytest.approx(1.0, abs=1e-5)  # scale-invariant
    assert float(kernel_alignment(x, x @ q)) == pytest.approx(1.0, abs=1e-5)  # rotation-invariant
    # different widths and sizes meet through the B×B Gram matrices, no connector
    maps = torch.randn(6, 8, 4, 4, generator=gen)
    other = torch.randn(6, 3, 9, 9, generator=gen)
    assert 0 < float(kernel_alignment(maps, other)) < 1
    assert float(feature_ka_loss([maps, other], [other])) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(BadInputError, match="shorten"):
        feature_ka_loss([maps], [maps, other])
    with pytest.raises(ValueError, match="≥ 2"):
        kernel_alignment(x[:1], x[:1])


def test_style_is_gram_distance() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2, 4, 5, 5, generator=gen)
    flat = a.reshape(2, 4, 25)
    assert torch.allclose(gram(a), flat @ flat.transpose(1, 2) / 100)
    assert torch.allclose(style_per_sample([a], [a]), torch.zeros(2))
    # a permutation of pixels keeps the Gram matrix: style, unlike L1, ignores where things are
    assert torch.allclose(style_per_sample([a], [a.flip(-1)]), torch.zeros(2), atol=1e-7)


def test_face_region_kd_ignores_the_background() -> None:
    gen = torch.Generator().manual_seed(0)
    face = 1 - background_mask(32).expand(2, -1, -1, -1)
    a, b = torch.rand(2, 3, 32, 32, generator=gen), torch.rand(2, 3, 32, 32, generator=gen)
    changed = a * face + torch.rand(2, 3, 32, 32, generator=gen) * (1 - face)  # background only
    assert torch.allclose(masked_l1(a, b, face), masked_l1(changed, b, face))
    assert not torch.allclose(masked_l1(a, b), masked_l1(changed, b))
    assert torch.allclose(masked_l1(a, b), (a - b).abs().flatten(1).mean(1))
    config = _config(kd_region="face")
    parts, batch = _setup(config)
    _, terms, _ = objective(config, parts, batch)
    assert {"rec", "per"} <= set(terms)


def test_extras_that_cannot_apply_are_errors() -> None:
    with pytest.raises(BadInputError, match="batch_size ≥ 2"):
        cfg.resolve("paper", None, {"loss": {"lambda_feature": 1.0}, "data": {"batch_size": 1}})
    with pytest.raises(BadInputError, match="kd = true"):
        cfg.resolve("ablation:no_kd", None, {"loss": {"lambda_feature": 1.0}})
    # the teacher's maps are cached per pair like its output (tests/test_distill_cache.py)
    cfg.resolve("paper", None, {"loss": {"lambda_feature": 1.0}, "perf": {"cache_teacher": True},
                                "data": {"pairs": "fixed", "hflip": False}})
    with pytest.raises(BadInputError, match="kd_region"):
        cfg.resolve("paper", None, {"loss": {"kd_region": "hair"}})
    with pytest.raises(BadInputError, match="no module named 'up9'"):
        find_layers(build_tiny_simswap(), ["up9"])
