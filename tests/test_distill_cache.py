"""``[perf] cache_teacher``: a cached step is the uncached step, and the cache forgets what changed.

The cache (:mod:`mfsbench.distill.pair_cache`) keeps everything a step computes from a fixed pair and
the frozen networks. These tests run the tiny default (the paper's full objective, random weights,
synthetic crops: equality needs no faces) with the cache filled up front, so every value of the
compared steps comes out of the cache, and hold the step to the uncached one loss for loss and
gradient for gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from mfsbench.distill import config as cfg
from mfsbench.distill.nets import build_nets
from mfsbench.distill.trainer import Distiller
from mfsbench.errors import BadInputError

TOL = 1e-6


class Crops:
    """uint8 crops in memory, standing in for :class:`mfsbench.distill.data.CropSet`."""

    def __init__(self, n: int, size: int = 64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        low = torch.rand(n + 4, 3, size // 8, size // 8, generator=g)
        images = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        images = (images * 255).round().to(torch.uint8)
        self.heldout, self.train = images[:4], images[4:]

    def __len__(self) -> int:
        return len(self.train)


def _config(cache: bool, **sections: dict) -> dict:
    over: dict = {"model": {"student": "test_mobilefaceswap", "teacher": "test_simswap",
                            "allow_random_weights": True},
                  "data": {"size": 64, "batch_size": 4, "pairs": "fixed", "hflip": False},
                  "loss": {"perceptual_width": 8}, "adv": {"width": 8},
                  "perf": {"cache_teacher": cache}}
    for section, values in sections.items():
        over.setdefault(section, {}).update(values)
    return cfg.resolve("paper", None, over)


def _distiller(config: dict, tmp_path: Path, crops: Crops) -> Distiller:
    return Distiller(config, build_nets(config), crops, tmp_path)  # type: ignore[arg-type]


def _grads(distiller: Distiller) -> list[list[Tensor]]:
    """The student's gradients of each step, read just before Adam uses them."""
    seen: list[list[Tensor]] = []
    step = distiller.opt.step

    def recording(*args: object, **kwargs: object) -> object:
        seen.append([p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in distiller.params])
        return step(*args, **kwargs)

    distiller.opt.step = recording  # type: ignore[method-assign]
    return seen


def _sync(a: Distiller, b: Distiller) -> None:
    """``b`` takes ``a``'s trained state (student, D, both optimisers): the two steps then start equal,
    so the comparison sees the step itself, not Adam's first moves of weights whose gradient is rounding
    noise (±lr either way, see the README's torchrun note)."""
    b.nets.student.swap.load_state_dict(a.nets.student.swap.state_dict())
    b.opt.load_state_dict(a.opt.state_dict())
    if a.disc is not None and b.disc is not None and a.d_opt is not None and b.d_opt is not None:
        b.disc.load_state_dict(a.disc.state_dict())
        b.d_opt.load_state_dict(a.d_opt.state_dict())


def _assert_same_steps(a: Distiller, b: Distiller, steps: int,
                       between: Callable[[int], None] | None = None) -> None:
    grads_a, grads_b = _grads(a), _grads(b)
    for step in range(steps):
        if between is not None:
            between(step)
        _sync(a, b)
        ea, eb = a.train_step(), b.train_step()
        assert ea.keys() == eb.keys()
        for key in ea:
            if key.startswith(("loss_", "alpha_")) or key == "grad_norm":
                assert abs(ea[key] - eb[key]) <= TOL * max(1.0, abs(ea[key])), (step, key, ea[key], eb[key])
        for ga, gb in zip(grads_a[-1], grads_b[-1], strict=True):
            assert float((ga - gb).abs().max()) <= TOL, step


@pytest.mark.parametrize("sections", [
    {},  # the paper's objective: every term, α from identity reweighting, L_adv with its D steps
    {"loss": {"lambda_feature": 1.0, "lambda_style": 1e3}},  # CAT's teacher maps and the style loss
    {"loss": {"kd": False}, "data": {"same_identity_fraction": 0.5}},  # no teacher: VGG of the target
], ids=["paper", "feature_and_style", "no_kd"])
def test_a_cached_step_equals_the_uncached_step(tmp_path: Path, sections: dict) -> None:
    crops = Crops(8)
    plain = _distiller(_config(False, **sections), tmp_path / "plain", crops)
    cached = _distiller(_config(True, **sections), tmp_path / "cached", crops)
    kd = cached.config["loss"]["kd"]
    pairs = 8 if kd else 16  # without KD, each target with its fixed source and with itself
    assert cached.fill_cache() == pairs
    calls = []
    for net in (cached.nets.teacher, cached.nets.student.id_net, cached.nets.vgg):
        assert net is not None
        net.register_forward_hook(lambda *_, net=net: calls.append(net))
    _assert_same_steps(plain, cached, 2)
    assert not any(net is cached.nets.teacher for net in calls)  # every pair value came out of the cache
    # F_id and VGG ran on the student's output only: once per step each
    assert sum(net is cached.nets.vgg for net in calls) == 2
    assert sum(net is cached.nets.student.id_net for net in calls) == 2
    info = cached._info()["pair_cache"]
    assert info["pairs"] == pairs and info["pairs_without_maps"] == 0
    expected = {"teacher_output", "alpha", "id_features(source)", "vgg(teacher_output)"} if kd \
        else {"id_features(source)", "vgg(target)"}
    assert expected <= set(info["holds"])
    assert ("teacher_feature_maps" in info["holds"]) == (cached.config["loss"]["lambda_feature"] > 0)


def test_pairs_beyond_the_budget_keep_their_small_parts_and_still_equal(tmp_path: Path) -> None:
    crops = Crops(8)
    plain = _distiller(_config(False, loss={"lambda_feature": 1.0}), tmp_path / "plain", crops)
    cached = _distiller(_config(True, loss={"lambda_feature": 1.0}, perf={"cache_gib": 1e-9}),
                        tmp_path / "cached", crops)
    cached.fill_cache()
    info = cached.cache.info()
    assert info["pairs"] == 8 and info["pairs_without_maps"] == 8
    assert all(e.output is not None and e.ref_features is None for e in cached.cache.entries.values())
    _assert_same_steps(plain, cached, 2)


def _edit_teacher(d: Distiller) -> None:
    with torch.no_grad():
        next(d.nets.teacher.parameters()).mul_(1.5)


def _edit_id_net(d: Distiller) -> None:
    net = d.nets.student.id_net
    net.load_state_dict({k: v * 0.9 if v.is_floating_point() else v for k, v in net.state_dict().items()})


def _edit_vgg(d: Distiller) -> None:
    assert d.nets.vgg is not None
    with torch.no_grad():
        d.nets.vgg.features[0].weight.add_(0.1)


def _swap_vgg_weight(d: Distiller) -> None:
    assert d.nets.vgg is not None
    conv = d.nets.vgg.features[0]
    conv.weight = torch.nn.Parameter(conv.weight.detach() * 1.1, requires_grad=False)


def _edit_data(d: Distiller) -> None:
    d.data.train[:2] = 255 - d.data.train[:2]


def _edit_config(d: Distiller) -> None:
    d.config["reweight"]["clamp_negative"] = not d.config["reweight"]["clamp_negative"]


@pytest.mark.parametrize("edit", [_edit_teacher, _edit_id_net, _edit_vgg, _swap_vgg_weight, _edit_data,
                                  _edit_config],
                         ids=["teacher", "id_net", "vgg", "vgg_swapped_tensor", "crops", "config"])
def test_a_change_the_cached_values_depend_on_empties_the_cache(tmp_path: Path,
                                                                edit: Callable[[Distiller], None]) -> None:
    plain = _distiller(_config(False), tmp_path / "plain", Crops(8))
    cached = _distiller(_config(True), tmp_path / "cached", Crops(8))
    cached.fill_cache()

    def change(step: int) -> None:
        if step == 1:
            edit(plain)
            edit(cached)

    _assert_same_steps(plain, cached, 2, change)
    assert cached.cache.invalidations == 1


def test_fill_cache_refuses_without_cache_teacher(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cache_teacher"):
        _distiller(_config(False), tmp_path, Crops(8)).fill_cache()
    with pytest.raises(BadInputError, match="cache_gib"):
        _config(True, perf={"cache_gib": -1.0})
