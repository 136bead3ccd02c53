"""The image-quality regressor Q of Eq. 4, and ``mfsbench distill-quality``, the step that trains it.

The paper scores each teacher output "according to the percentage of the completed iterations in the
teacher training process" and regresses that score with a ResNet-18 "by supervision with L2 Loss";
α = cos² × Q(I'g). So Q needs outputs saved while the *teacher* trained, which only whoever trained the
teacher has (the released SimSwap is a final checkpoint): this is a separate, optional step.

Snapshot layout (``--snapshots DIR``): one subfolder per saved iteration, named by its iteration
number, holding that snapshot's output images (any depth below it)::

    DIR/10000/*.png   DIR/20000/*.jpg   …   DIR/300000/*.png

An image's target is ``iteration / max iteration`` (the last snapshot is 1.0). Folders whose name is
not a whole number are an error (a typo must not silently drop a snapshot).

Q is :class:`QualityNet` (our ResNet-18 trunk, global average pool, one linear output), trained with
Adam on the mean squared error to the progress; written as ``.safetensors`` whose metadata holds the
width and input size, so :func:`load_quality` rebuilds it exactly. During distillation Q is frozen, runs
without gradient, and its output is clamped to [0, 1].
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfsbench.distill.resnet import ResNet18
from mfsbench.errors import BadInputError
from mfsbench.models.arcface import imagenet_normalize

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class QualityNet(nn.Module):
    """ResNet-18 → global average → linear: one score per image (trained toward progress ∈ [0, 1])."""

    def __init__(self, width: int = 64, size: int = 224) -> None:
        super().__init__()
        self.width, self.size = width, size
        self.backbone = ResNet18(width)
        self.fc = nn.Linear(8 * width, 1)

    def forward(self, rgb01: Tensor) -> Tensor:
        x = rgb01
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, (self.size, self.size), mode="bilinear", align_corners=False)
        feat = self.backbone(imagenet_normalize(x))[2]
        return self.fc(F.adaptive_avg_pool2d(feat, 1).flatten(1))[:, 0]


class FrozenQuality(nn.Module):
    """Q as the objective uses it: eval mode, no gradient, clamped to [0, 1]."""

    def __init__(self, net: QualityNet) -> None:
        super().__init__()
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, rgb01: Tensor) -> Tensor:
        with torch.no_grad():
            return self.net(rgb01.float()).float().clamp(0.0, 1.0)


def snapshot_images(root: Path) -> tuple[list[Path], list[float], dict[str, Any]]:
    """Every image under ``root/<iteration>/`` and its progress ``iteration / max iteration``."""
    if not root.is_dir():
        raise BadInputError(f"--snapshots {root} is not a folder; pass a folder with one subfolder per "
                            "teacher-training iteration (e.g. 10000/, 20000/) holding that snapshot's "
                            "outputs")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    bad = [p.name for p in folders if not p.name.isdigit()]
    if bad:
        raise BadInputError(f"--snapshots {root}: subfolder(s) {', '.join(bad[:5])} are not iteration "
                            "numbers; "
                            "name each snapshot folder by its training iteration (e.g. 20000)")
    found = {int(p.name): sorted(f for f in p.rglob("*")
                                 if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
             for p in folders}
    found = {it: files for it, files in found.items() if files}
    if len(found) < 2 or max(found) <= 0:
        raise BadInputError(f"--snapshots {root}: need images in at least two iteration folders "
                            f"(found {len(found)}); Q learns progress between snapshots")
    top = max(found)
    paths, targets = [], []
    for iteration, files in sorted(found.items()):
        paths += files
        targets += [iteration / top] * len(files)
    summary = {"iterations": sorted(found), "max_iteration": top, "images": len(paths),
               "images_per_iteration": {str(k): len(v) for k, v in sorted(found.items())}}
    return paths, targets, summary


def _read(paths: list[Path], size: int) -> Tensor:
    from mfsbench.faces.align import cv2_module

    cv2 = cv2_module()
    images = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BadInputError(f"cannot read image {path}; remove it from --snapshots or re-save it")
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
        images.append(torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1))
    return torch.stack(images)


def train_quality(root: Path, out: Path, *, steps: int = 2000, batch_size: int = 32, lr: float = 1e-3,
                  width: int = 64, size: int = 224, seed: int = 0, log_every: int = 50,
                  device: str = "cpu") -> dict[str, Any]:
    """Train Q on ``(image, progress)`` with L2 loss; write ``out`` (.safetensors); return a summary."""
    from safetensors.torch import save_file

    if steps < 1 or batch_size < 1 or width < 1 or size < 32:
        raise BadInputError("--steps, --batch-size and --width must be ≥ 1 and --size ≥ 32")
    if out.suffix != ".safetensors":
        raise BadInputError(f"--out {out} must end in .safetensors")
    paths, targets, summary = snapshot_images(root)
    images = _read(paths, size)
    y = torch.tensor(targets, dtype=torch.float32)
    torch.manual_seed(seed)
    net = QualityNet(width, size).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    window: list[float] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        rows = torch.randint(len(images), (min(batch_size, len(images)),), generator=gen)
        flip = torch.rand(len(rows), generator=gen) < 0.5
        x = images[rows].float() / 255.0
        x = torch.where(flip[:, None, None, None], x.flip(-1), x).to(device)
        loss = F.mse_loss(net(x), y[rows].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(float(loss.detach()))
        if not math.isfinite(window[-1]):
            raise BadInputError(f"distill-quality: the L2 loss became {window[-1]} at step {step}; "
                                "lower --lr")
        if step % log_every == 0 or step == steps:
            history.append({"step": float(step), "loss_l2": sum(window) / len(window)})
            sys.stderr.write(f"distill-quality: step {step}/{steps} L2 {history[-1]['loss_l2']:.4g}\n")
            window = []
    net.eval()
    with torch.no_grad():
        scores = torch.cat([net(images[i: i + 64].float().div(255.0).to(device)).cpu()
                            for i in range(0, len(images), 64)])
    per_iteration = {str(it): float(scores[y == it / summary["max_iteration"]].mean())
                     for it in summary["iterations"]}
    fit = {"l2_all_images": float(F.mse_loss(scores, y)), "mean_score_per_iteration": per_iteration,
           "spearman_progress": _spearman(scores, y)}
    settings = {"steps": steps, "batch_size": batch_size, "lr": lr, "width": width, "size": size,
                "seed": seed}
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"kind": "mfsbench_quality_regressor", "width": str(width),
                                         "size": str(size), "snapshots": json.dumps(summary),
                                         "settings": json.dumps(settings)})
    return {"out": str(out), "snapshots": summary, "settings": settings, "history": history, "fit": fit,
            "train_s": time.perf_counter() - start}


def _spearman(a: Tensor, b: Tensor) -> float:
    """Rank correlation of Q's scores with the true progress (ties get their mean rank)."""
    def ranks(v: Tensor) -> Tensor:
        order = v.argsort()
        r = torch.empty_like(v)
        r[order] = torch.arange(len(v), dtype=v.dtype)
        for value in v.unique():
            tied = v == value
            r[tied] = r[tied].mean()
        return r

    ra, rb = ranks(a.double()), ranks(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denominator if denominator > 0 else 0.0


def load_quality(path: str) -> tuple[FrozenQuality, dict[str, Any]]:
    """Q from a ``distill-quality`` file: strict by name and shape, finite; and its record entry."""
    from safetensors import safe_open

    from mfsbench.checkpoints.digest import sha256_file
    from mfsbench.checkpoints.mapping import load_strict
    from mfsbench.distill.nets import read_state_dict

    file = Path(path)
    where = f"[reweight] quality_weights {file}"
    if not file.is_file():
        raise BadInputError(f"{where} not found; train Q with `mfsbench distill-quality` or set "
                            "[reweight] quality = \"off\"")
    if file.suffix != ".safetensors":
        raise BadInputError(f"{where} must be the .safetensors file `mfsbench distill-quality` writes")
    try:
        with safe_open(str(file), "pt") as handle:
            meta = handle.metadata() or {}
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise BadInputError(f"{where} is not a readable safetensors file ({exc})") from None
    if meta.get("kind") != "mfsbench_quality_regressor":
        raise BadInputError(f"{where} was not written by `mfsbench distill-quality` (no quality-regressor "
                            "metadata); train Q with that command")
    net = QualityNet(int(meta["width"]), int(meta["size"]))
    load_strict(net, read_state_dict(file), where)
    record = {"role": "quality", "path": str(file), "sha256": sha256_file(file), "format": "safetensors",
              "keys": len(net.state_dict()), "width": net.width, "size": net.size,
              "snapshots": json.loads(meta.get("snapshots", "{}"))}
    return FrozenQuality(net), record
