"""Key mapping from the official Paddle checkpoints to the PyTorch port, and strict loading.

The released ``MobileFaceSwap_224.pdparams`` and ``arcface.pdparams`` are pickled dicts of numpy
arrays under Paddle's structured names. Our module names are Paddle's, so only three rules apply:
BatchNorm statistics are renamed (``_mean`` → ``running_mean``, ``_variance`` → ``running_var``),
PReLU's ``_weight`` becomes ``weight``, and every 2-D array (only Linear weights are 2-D, stored
``[in, out]`` by Paddle) is transposed. Loading is strict: any missing, unexpected or mis-shaped key is
an error that lists them, because a silently half-loaded network produces plausible garbage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from mfsbench.errors import BadInputError

_RENAMES = (("._mean", ".running_mean"), ("._variance", ".running_var"), ("._weight", ".weight"))


def paddle_key_to_torch(key: str) -> str:
    for old, new in _RENAMES:
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def paddle_to_torch(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Rename Paddle keys and transpose Linear weights; values may be numpy arrays or tensors."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        array = np.asarray(value)
        if array.ndim == 2:
            array = array.T
        converted[paddle_key_to_torch(key)] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return converted


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``module``; every learned tensor and BN statistic must match by name and shape.

    ``num_batches_tracked`` is the only key allowed to be absent (Paddle has no such counter).

    Raises:
        BadInputError: listing missing, unexpected and mis-shaped keys, naming ``source``.
    """
    expected = module.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if keys:
            shown = ", ".join(keys[:8]) + (f" … (+{len(keys) - 8} more)" if len(keys) > 8 else "")
            problems.append(f"{len(keys)} {label}: {shown}")
    if problems:
        raise BadInputError(
            f"{source} does not match {type(module).__name__}: "
            + "; ".join(problems)
            + ". Is it the right checkpoint for this model?"
        )
    module.load_state_dict(dict(state), strict=False)
