"""Regression: the ONNX export must keep tiny epsilons (SimSwap's instance norm uses 1e-8).

onnxscript's optimizer, which ``torch.onnx.export`` runs by default, deletes ``Add(x, 1e-8)`` as an
add of zero; SimSwap's exported frame stage then drifted 1–2e-4 from torch on real faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mfsbench.export.onnx import export_onnx


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
    export_onnx(module, (x,), path, ["x"], ["y"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        want = module(x).numpy()
        without_eps = RmsScale(0.0)(x).numpy()
    assert np.abs(want - without_eps).max() > 0.05  # the test input really depends on ε
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
