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
from torch import Tensor

from mfsbench.distill.extras import ssim_per_sample


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB of two [0, 1] batches (clamped to [0, 1] first, as a saved image would be)."""
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp(min=1e-10))


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Per-image SSIM (Wang et al. 2004: Gaussian 11×11, σ 1.5, C1 = 0.01², C2 = 0.03²), mean over RGB,
    of the images clamped to [0, 1] as a saved image would be (the loss form is
    :func:`mfsbench.distill.extras.ssim_per_sample`)."""
    return ssim_per_sample(a.clamp(0, 1), b.clamp(0, 1))


def image_metrics(student: Tensor, teacher: Tensor) -> dict[str, float]:
    return {
        "psnr_db": float(psnr(student, teacher).mean()),
        "ssim": float(ssim(student, teacher).mean()),
        "l1": float((student.clamp(0, 1) - teacher.clamp(0, 1)).abs().mean()),
    }


#: the face box of an aligned crop, as fractions of its side: where the 68-point predictor looks
#: (both templates put the eyes near 0.46 and the mouth near 0.82 of the height)
ALIGNED_FACE_BOX = (0.12, 0.18, 0.88, 0.98)


class HeldOutIdentity:
    """Identity cosine of held-out swaps with an evaluator that is *not* the training ArcFace.

    Scoring the student with the network it was trained against rewards fooling that network (the
    reason ``specs/plugin_models.md`` cites for ``forbid_id_evaluator``); dlib's ResNet descriptor
    (the suite's offline identity evaluator, ``mfsbench/quality/offline.py``) is independent of it.
    A crop is already aligned, so its face box is fixed (:data:`ALIGNED_FACE_BOX`) and no detector
    runs. Source descriptors are computed once per run.
    """

    name = "dlib_resnet128"

    def __init__(self) -> None:
        from mfsbench.quality.offline import DlibResnetIdentity

        self._evaluator = DlibResnetIdentity(flip_concat=False)
        self._sources: Tensor | None = None

    def _embed(self, images: Tensor) -> Tensor:
        from mfsbench.faces.types import Face

        side = images.shape[-1]
        box = np.array(ALIGNED_FACE_BOX, np.float64) * side
        face = Face(box=box, score=1.0, landmarks5=np.zeros((5, 2)))
        rows = []
        for image in images.clamp(0, 1):
            bgr = np.ascontiguousarray((image.permute(1, 2, 0).cpu().numpy()[:, :, ::-1] * 255).round()
                                       .astype(np.uint8))
            rows.append(torch.from_numpy(self._evaluator.descriptor(bgr, face)))
        return torch.stack(rows).float()

    def cosines(self, sources: Tensor, outputs: Tensor) -> Tensor:
        """cos(source, output) per held-out pair (descriptors are unit vectors)."""
        if self._sources is None:
            self._sources = self._embed(sources)
        return (self._sources * self._embed(outputs)).sum(1)


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
