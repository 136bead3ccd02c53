"""The batched training forward of the student equals its inference forward (issue 18, deliverable 4)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mfsbench.distill.student import student_forward
from mfsbench.models.arcface import ArcFaceIRSE
from mfsbench.models.mobilefaceswap import MobileFaceSwap
from mfsbench.models.tiny import TINY_STUDENT, build_tiny_student

#: The five architecture ablations of Table 2, at the tiny student's widths.
VARIANTS = {
    "student": {},
    "no_weight_prediction": {"predict_depthwise": False},
    "adain": {"pointwise": "adain"},
    "no_modulation": {"pointwise": "static"},
    "no_fusion": {"fusion_mask": False},
    "autoencoder": {"skips": False},
}


def _tiny(changes: dict) -> MobileFaceSwap:
    torch.manual_seed(0)
    id_net = ArcFaceIRSE(layers=(1, 1, 1, 1), widths=(4, 8, 8, 16), embedding_dim=16)
    return MobileFaceSwap(replace(TINY_STUDENT, **changes), id_net).eval()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batched_forward_equals_inference_per_sample(variant: str) -> None:
    model = _tiny(VARIANTS[variant])
    gen = torch.Generator().manual_seed(1)
    source = torch.randn(3, 3, 112, 112, generator=gen)
    target = torch.rand(3, 3, 64, 64, generator=gen)
    with torch.no_grad():
        swapped, mask = student_forward(model, source, target)
        for i in range(3):  # B = 3 batched vs three batch-1 inference passes (the official path)
            ref_swapped, ref_mask = model(source[i : i + 1], target[i : i + 1])
            assert (swapped[i : i + 1] - ref_swapped).abs().max().item() <= 1e-6
            assert (mask[i : i + 1] - ref_mask).abs().max().item() <= 1e-6


def test_batch_one_equals_inference() -> None:
    model = _tiny({})
    source, target = torch.randn(1, 3, 112, 112), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours = student_forward(model, source, target)
        ref = model(source, target)
    for a, b in zip(ours, ref, strict=True):
        assert (a - b).abs().max().item() <= 1e-6


def test_gradient_reaches_the_injection_network() -> None:
    """The inference path freezes injected kernels; the training path must not."""
    model = build_tiny_student()
    model.swap.train()
    out, _ = student_forward(model, torch.randn(2, 3, 112, 112), torch.rand(2, 3, 64, 64))
    out.mean().backward()
    for name in ("predictor.first.weight", "EncoderModulation.0.weight", "EncoderModulation.0.style.weight",
                 "final.1.weight"):
        grad = model.swap.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_mismatched_batch_is_refused() -> None:
    model = _tiny({})
    with pytest.raises(ValueError, match="identities"):
        from mfsbench.distill.student import batch_frame, batch_identity

        emb, idmap = model.id_net(torch.randn(2, 3, 112, 112))
        batch_frame(model.swap, model.config, batch_identity(model.swap, model.config, emb, idmap),
                    torch.rand(3, 3, 64, 64))
