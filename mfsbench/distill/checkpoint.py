"""Atomic, complete checkpoints of a distillation run, and the refusal to resume a different run.

One file per save holds everything the next step depends on: the student's trainable part, D, both
optimisers, every RNG state, the step, the loss history, the resolved config (with its hash) and the
git commit. It is written to a temporary name and renamed (``os.replace`` is atomic on one file
system), so a crash mid-write leaves the previous checkpoint intact. Files are read back with
``torch.load(weights_only=True)``: a checkpoint cannot execute code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mfsbench.distill.config import math_differences, math_hash
from mfsbench.errors import BadInputError

PATTERN = "ckpt-{step:08d}.pt"


def rng_state() -> dict[str, Any]:
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(state), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)],
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder: Path, payload: dict[str, Any], keep_last: int) -> Path:
    """Write ``payload`` as ``ckpt-<step>.pt`` atomically, then drop all but the last ``keep_last``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PATTERN.format(step=payload["step"])
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    for old in sorted(folder.glob("ckpt-*.pt"))[:-keep_last]:
        old.unlink()
    return path


def latest(folder: Path) -> Path | None:
    found = sorted(folder.glob("ckpt-*.pt"))
    return found[-1] if found else None


def load(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint and refuse it when a loss-affecting key differs from ``config``."""
    if not path.is_file():
        raise BadInputError(f"--resume {path}: no such checkpoint; pass a ckpt-*.pt file or 'auto'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise BadInputError(f"--resume {path} is not a readable distill checkpoint: {exc}") from None
    if payload.get("config_hash") != math_hash(config):
        diffs = math_differences(payload["config"], config)
        raise BadInputError(
            f"--resume {path}: the run was started with a different objective ({'; '.join(diffs[:6])}); "
            "resuming would not continue that run: restore those values or start a new --out"
        )
    return payload
