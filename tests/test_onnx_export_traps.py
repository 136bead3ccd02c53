"""Regressions for two traps of torch's dynamo ONNX exporter.

* onnxscript's optimizer, which ``torch.onnx.export`` runs by default, deletes ``Add(x, 1e-8)`` as an
  add of zero; SimSwap's exported frame stage then drifted 1–2e-4 from torch on real faces. The
  export runs it without the rules that do (``tests/test_onnx_optimize.py`` has the cause).
* a bias-free conv gets its zero bias as a ``Shape → Expand`` subgraph that ONNX Runtime never
  folds, which keeps the conv out of its NCHWc kernels (the student ran 1.4–2.3× slower).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mfsbench.export.onnx import explicit_biases, export_onnx


class RmsScale(nn.Module):
    """SimSwap's normalisation ``x · rsqrt(mean(x²) + ε)`` with ε given as a Python float."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=(2, 3), keepdim=True) + self.eps)


def test_onnx_export_keeps_a_1e_8_epsilon(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    # activations of 1e-4: mean(x²) ≈ 1e-8, so dropping ε changes the output by about 30 %
    x = torch.rand(1, 2, 8, 8, generator=torch.Generator().manual_seed(0)) * 2e-4
    module = RmsScale(1e-8).eval()
    path = tmp_path / "rms.onnx"
    assert export_onnx(module, (x,), path, ["x"], ["y"])["optimized"] is True  # with the optimiser on
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        want = module(x).numpy()
        without_eps = RmsScale(0.0)(x).numpy()
    assert np.abs(want - without_eps).max() > 0.05  # the test input really depends on ε
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _bias_free_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 4, 2, 1, groups=1, bias=False),
        nn.LeakyReLU(0.1),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False),
        nn.Conv2d(8, 3, 1, bias=False),
    ).eval()


@pytest.mark.parametrize("optimize", [False, True], ids=["unoptimised", "optimised"])
def test_bias_free_convs_are_exported_with_constant_biases(tmp_path: Path, optimize: bool) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    module = _bias_free_net()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "convs.onnx"
    details = export_onnx(module, (x,), path, ["x"], ["y"], optimize=optimize)
    assert details["optimized"] is optimize
    graph = onnx.load(str(path)).graph
    constants = {init.name for init in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert len(convs) == 3
    for node in convs:
        if optimize:  # onnxscript's RemoveOptionalBiasFromConv drops the all-zero constant: no bias at all
            assert len(node.input) == 2 or node.input[2] in constants, node
        else:
            assert len(node.input) == 3 and node.input[2] in constants, node
    assert not [node.op_type for node in graph.node if node.op_type in ("Expand", "CastLike")]
    assert all(conv.bias is None for conv in module.modules() if isinstance(conv, nn.Conv2d))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, module(x).numpy(), rtol=1e-5, atol=1e-6)


def test_explicit_biases_are_zero_while_open_and_gone_after_even_on_error() -> None:
    module = _bias_free_net()
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    with explicit_biases(module) as ready:
        assert ready is module  # no copy of the weights
        assert all(conv.bias is not None and not conv.bias.any() for conv in convs)
    assert all(conv.bias is None for conv in convs)
    with pytest.raises(RuntimeError, match="export failed"), explicit_biases(module):
        raise RuntimeError("export failed")
    assert all(conv.bias is None for conv in convs)
    biased = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    before = biased[0].bias
    with explicit_biases(biased):
        assert biased[0].bias is before  # an existing bias is never touched
    assert biased[0].bias is before
