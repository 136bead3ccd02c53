"""Batch norms folded into their convolutions (the swap command's torch frame stage): same outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mfsbench.export.compare import TOLERANCES
from mfsbench.models.folding import fold_batchnorm
from mfsbench.registry import create_model


def _trained_looking(module: nn.Module, seed: int) -> None:
    """Batch-norm statistics and affine terms away from their identity init, so folding has work."""
    generator = torch.Generator().manual_seed(seed)
    for norm in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        size = norm.num_features
        norm.running_mean.copy_(torch.randn(size, generator=generator))
        norm.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
        norm.weight.data.copy_(torch.randn(size, generator=generator))
        norm.bias.data.copy_(torch.randn(size, generator=generator))


def test_folding_keeps_the_outputs_and_leaves_the_original_alone() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.1),
                        nn.Sequential(nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4)),
                        nn.BatchNorm2d(4)).eval()  # the last norm follows a Sequential: not folded
    _trained_looking(net, 1)
    x = torch.rand(2, 3, 16, 16)
    folded, count = fold_batchnorm(net)
    assert count == 2
    assert isinstance(folded[1], nn.Identity) and isinstance(folded[3][1], nn.Identity)
    assert isinstance(net[1], nn.BatchNorm2d)  # the original is unchanged
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5)


@pytest.mark.parametrize("name", ["mobilefaceswap_224", "simswap_224"])
def test_folded_frame_stage_equals_the_model_frame_stage(name: str) -> None:
    """The zoo's frame stages (identity from a 112 ArcFace crop), batch norms with non-trivial
    statistics: within the suite's fp32 parity gate (compare.TOLERANCES: max |err| ≤ 1e-4; SimSwap's
    deep generator with random unit-scale norms reaches ~1.4e-5, the student ~1e-7)."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    _trained_looking(model, 2)
    size = 224
    with torch.no_grad():
        stage = model.identity_stage()
        source = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(3))
        frame = model.frame_stage(stage(source)).eval()
        folded, count = fold_batchnorm(frame)
        target = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(4))
        expected, got = frame(target), folded(target)
    assert count > 0
    pairs = zip(expected, got, strict=True) if isinstance(expected, tuple) else [(expected, got)]
    _metric, gate = TOLERANCES["fp32"]
    for a, b in pairs:
        assert float((a - b).abs().max()) <= gate

