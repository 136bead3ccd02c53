"""Held-out evaluation of a distilled student against its teacher, and the pictures of a run.

Student→teacher PSNR/SSIM/L1 on fixed held-out pairs is what distillation optimises and the one
number that means something with random weights too (it measures how well the student imitates,
not how good the swap is). Identity and FID need real weights and the quality command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB of two [0, 1] batches (clamped to [0, 1] first, as a saved image would be)."""
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp(min=1e-10))


def _gaussian(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Per-image SSIM (Wang et al. 2004: Gaussian 11×11, σ 1.5, C1 = 0.01², C2 = 0.03²), mean over RGB."""
    a, b = a.clamp(0, 1).float(), b.clamp(0, 1).float()
    channels = a.shape[1]
    window = _gaussian().to(a.device)[None, None].repeat(channels, 1, 1, 1)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, window, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return value.flatten(1).mean(1)


def image_metrics(student: Tensor, teacher: Tensor) -> dict[str, float]:
    return {
        "psnr_db": float(psnr(student, teacher).mean()),
        "ssim": float(ssim(student, teacher).mean()),
        "l1": float((student.clamp(0, 1) - teacher.clamp(0, 1)).abs().mean()),
    }


def write_grid(path: Path, rows: list[list[Tensor]]) -> Path:
    """A PNG with one row per pair (source | target | teacher | student), RGB [0, 1] CHW tensors."""
    from mfsbench.faces.align import cv2_module

    cv2 = cv2_module()
    lines = [torch.cat([img.clamp(0, 1) for img in row], dim=2) for row in rows]
    grid = torch.cat(lines, dim=1).permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(grid[:, :, ::-1]))
    return path


def plot_curves(path: Path, history: list[dict[str, float]], evals: list[dict[str, float]]) -> Path | None:
    """Loss terms and held-out PSNR against step (matplotlib, when installed); None when it is not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.stderr.write("distill: matplotlib is not installed; no curves.png (pip install matplotlib)\n")
        return None
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(10, 4))
    keys = sorted({k for h in history for k in h if k.startswith("loss_")})
    steps = [h["step"] for h in history]
    for key in keys:
        ax_loss.plot(steps, [h.get(key, float("nan")) for h in history], label=key.removeprefix("loss_"))
    ax_loss.set_xlabel("step")
    ax_loss.set_yscale("log")
    ax_loss.set_title("training loss terms (unweighted)")
    ax_loss.legend()
    ax_eval.plot([e["step"] for e in evals], [e["psnr_db"] for e in evals], marker="o")
    ax_eval.set_xlabel("step")
    ax_eval.set_ylabel("held-out student→teacher PSNR (dB)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
