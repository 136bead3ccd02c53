"""Losses beyond the paper, opt-in (``source = "beyond"`` in the config, all off by default).

``specs/distillation.md`` §2 compares the GAN-compression methods and names what transfers to a
fixed, released teacher:

* **OMGD** (Ren et al., ICCV 2021): output losses richer than L1, namely (1 − SSIM) and a VGG
  Gram-matrix style loss. OMGD weights them 10 and 1e4 against its teachers;
* **CAT** (Jin et al., CVPR 2021): feature distillation by *kernel alignment*,
  ``KA(X, Y) = ⟨XXᵀ, YYᵀ⟩ / (‖XXᵀ‖·‖YYᵀ‖)`` over the batch. Only the B×B Gram matrices meet, so a
  student map of any width and size is compared with the teacher's without a learned connector;
* **content-aware KD** (Liu et al., CVPR 2021): the KD losses restricted to the face. Here the fusion
  mask already takes the background from the target, so the face is where the student has to match.

Each function returns one value per sample (except KA, which is a property of the batch), so α can
weight it as it weights L_rec and L_per.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfsbench.errors import BadInputError

#: SSIM's Gaussian window (Wang et al. 2004): 11 taps, σ = 1.5, constants for a [0, 1] range.
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2


def region_mean(values: Tensor, region: Tensor | None) -> Tensor:
    """Per-sample mean of ``values`` (B×C×H×W), over ``region`` (B×1×h×w, resized to H×W) if given."""
    if region is None:
        return values.flatten(1).mean(1)
    weight = F.interpolate(region.float(), size=values.shape[-2:], mode="area").expand_as(values)
    return (values * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp(min=1e-6)


def masked_l1(a: Tensor, b: Tensor, region: Tensor | None = None) -> Tensor:
    """Per-sample mean |a − b|, over ``region`` only when given."""
    return region_mean((a - b).abs(), region)


def _gaussian_window(channels: int, like: Tensor) -> Tensor:
    coords = torch.arange(SSIM_WINDOW, dtype=like.dtype, device=like.device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-coords.pow(2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()


def ssim_per_sample(a: Tensor, b: Tensor, region: Tensor | None = None) -> Tensor:
    """Mean SSIM per sample of two B×C×H×W images in [0, 1] (Gaussian window, valid positions only).

    With ``region``, the SSIM map is averaged over it (cropped to the valid positions).
    """
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)  # float64 stays
    a, b = a.to(dtype), b.to(dtype)
    channels = a.shape[1]
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} px, got {tuple(a.shape[-2:])}")
    window = _gaussian_window(channels, a)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, window, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a.pow(2)
    var_b = blur(b * b) - mu_b.pow(2)
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_a.pow(2) + mu_b.pow(2) + SSIM_C1) * (var_a + var_b + SSIM_C2))
    if region is not None:
        half = SSIM_WINDOW // 2
        region = region[..., half:region.shape[-2] - half, half:region.shape[-1] - half]
    return region_mean(ssim_map, region)


def gram(features: Tensor) -> Tensor:
    """B×C×C Gram matrices, normalised by C·H·W (Gatys et al.; Johnson et al.)."""
    b, c, h, w = features.shape
    flat = features.float().reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def style_per_sample(out_features: list[Tensor], ref_features: list[Tensor]) -> Tensor:
    """Σ over layers of the mean squared difference of Gram matrices, per sample."""
    total = out_features[0].new_zeros(out_features[0].shape[0], dtype=torch.float32)
    for fo, fr in zip(out_features, ref_features, strict=True):
        total = total + (gram(fo) - gram(fr)).pow(2).flatten(1).mean(1)
    return total


def kernel_alignment(x: Tensor, y: Tensor) -> Tensor:
    """CAT's ``KA(X, Y) = ⟨XXᵀ, YYᵀ⟩_F / (‖XXᵀ‖_F ‖YYᵀ‖_F)`` with each sample's map flattened to a row.

    In [0, 1] for real maps; 1 when the two batches' Gram matrices are proportional (e.g. y = s·x, or
    y = x·Q for an orthogonal Q). Needs a batch of at least two.
    """
    if x.shape[0] < 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"kernel alignment needs two batches of the same size ≥ 2, got {x.shape[0]} "
                         f"and {y.shape[0]}")
    fx, fy = x.float().flatten(1), y.float().flatten(1)
    gx, gy = fx @ fx.T, fy @ fy.T
    return (gx * gy).sum() / (gx.norm() * gy.norm()).clamp(min=1e-12)


def feature_ka_loss(student_maps: list[Tensor], teacher_maps: list[Tensor]) -> Tensor:
    """Mean of (1 − KA) over the pairs: the last ``len(teacher_maps)`` student maps, in order."""
    if len(student_maps) < len(teacher_maps):
        raise BadInputError(f"[loss] lambda_feature pairs {len(teacher_maps)} teacher layer(s) with the "
                            f"student's decoder blocks, but the student has only {len(student_maps)}; "
                            "shorten [loss] feature_teacher_layers")
    pairs = zip(student_maps[len(student_maps) - len(teacher_maps):], teacher_maps, strict=True)
    losses = [1 - kernel_alignment(s, t.detach()) for s, t in pairs]
    return torch.stack(losses).mean()


def find_layers(network: nn.Module, names: list[str]) -> list[nn.Module]:
    """The modules of ``network`` named ``names`` (a name matches itself or a dotted suffix, so a
    wrapped teacher's ``netG.up3`` answers to ``up3``); an unknown or ambiguous name is one error."""
    named = dict(network.named_modules())
    found = []
    for name in names:
        matches = [m for full, m in named.items() if full == name or full.endswith("." + name)]
        if len(matches) != 1:
            what = "no module" if not matches else f"{len(matches)} modules"
            raise BadInputError(f"[loss] feature_teacher_layers: the teacher has {what} named {name!r}; "
                                f"use names of its modules (e.g. SimSwap's up3, up2, up1)")
        found.append(matches[0])
    return found


@contextmanager
def capture_outputs(modules: list[nn.Module]) -> Iterator[list[Tensor]]:
    """Collect each module's output, in the order given, while the block runs."""
    outputs: dict[int, Tensor] = {}
    handles = []
    for index, module in enumerate(modules):
        def hook(_m: nn.Module, _inputs: object, output: Tensor, index: int = index) -> None:
            outputs[index] = output[0] if isinstance(output, tuple) else output
        handles.append(module.register_forward_hook(hook))
    collected: list[Tensor] = []
    try:
        yield collected
    finally:
        for handle in handles:
            handle.remove()
        collected.extend(outputs[i] for i in sorted(outputs))
