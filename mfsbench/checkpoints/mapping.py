"""Key mapping from the official Paddle checkpoints to the PyTorch port, and strict loading.

The released ``MobileFaceSwap_224.pdparams`` and ``arcface.pdparams`` are pickled dicts of numpy
arrays under Paddle's structured names. Our module names are Paddle's, so only three rules apply:
BatchNorm statistics are renamed (``_mean`` → ``running_mean``, ``_variance`` → ``running_var``),
PReLU's ``_weight`` becomes ``weight``, and every 2-D array (only Linear weights are 2-D, stored
``[in, out]`` by Paddle) is transposed. Loading is strict: any missing, unexpected or mis-shaped key is
an error that lists them, because a silently half-loaded network produces plausible garbage. So is
any NaN/Inf or absurdly large value (:data:`MAX_ABS_WEIGHT`): such a file loads without complaint
and swaps a black square into the photo. Every official-format loader (swap, quality's evaluators,
``device --checkpoint``, ``convert``) ends here, so none can accept one.
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


#: Largest magnitude a checkpoint tensor may hold (a running variance: its square root, the standard
#: deviation, in the same units as the running mean). Trained face networks are nowhere near it:
#: weight decay and normalisation keep conv and linear weights of ArcFace/IR-SE, MobileFaceSwap,
#: SimSwap's generator, Hopenet, SphereFace and Inception at magnitudes of order 1 (rarely above 10),
#: BN affine parameters likewise, and BN running means/standard deviations follow activations of
#: normalised inputs (order 1 to 100s). 1e4 leaves two orders of magnitude of headroom above that,
#: while a file of uninitialised memory, a bit-flipped float, a wrong dtype reinterpretation or a
#: diverged training run gives values of 1e10 to 1e38, which only "work" by saturating every output.
MAX_ABS_WEIGHT = 1e4


def _tensor_problem(key: str, tensor: torch.Tensor) -> str | None:
    """Why ``tensor`` cannot be a trained weight (non-finite or absurdly large), or None."""
    if not tensor.is_floating_point() or tensor.numel() == 0 or tensor.device.type == "meta":
        return None  # integer counters (num_batches_tracked) count steps; they may be large
    values = tensor.detach().float()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        nan = int(torch.isnan(values).sum())
        inf = values.numel() - int(finite.sum()) - nan
        kinds = ", ".join(f"{n} {label}" for n, label in ((nan, "NaN"), (inf, "Inf")) if n)
        return f"tensor {key} holds non-finite values ({kinds} of {values.numel()})"
    peak = float(values.abs().max())
    variance = key.endswith("running_var")
    scaled = peak**0.5 if variance else peak
    if scaled > MAX_ABS_WEIGHT:
        shown = f"running variance {peak:.3g} (std {scaled:.3g})" if variance else f"max |value| {peak:.3g}"
        return f"tensor {key} holds {shown}, above the {MAX_ABS_WEIGHT:g} no trained face network reaches"
    return None


def check_finite_weights(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse a state dict with NaN/Inf anywhere or a value above :data:`MAX_ABS_WEIGHT`.

    Such a file loads without complaint and swaps into a black or saturated square, so it is refused
    here, naming the first offending tensor (in file order) and how many others are bad.

    Raises:
        BadInputError: naming ``source``, the tensor and what is wrong with it.
    """
    problems = [p for p in (_tensor_problem(k, v) for k, v in state.items()) if p]
    if problems:
        more = f" (and {len(problems) - 1} more tensor(s))" if len(problems) > 1 else ""
        raise BadInputError(f"{source}: {problems[0]}{more}; the file is corrupt or not trained weights, "
                            "get an intact copy of the official file")


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``module``; every learned tensor and BN statistic must match by name and shape.

    ``num_batches_tracked`` is the only key allowed to be absent (Paddle has no such counter).

    Then every floating tensor must be finite and of a plausible size (:func:`check_finite_weights`).

    Raises:
        BadInputError: listing missing, unexpected and mis-shaped keys, naming ``source``; or naming
            a tensor that holds NaN/Inf or a value above :data:`MAX_ABS_WEIGHT`.
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
    check_finite_weights(state, source)
    module.load_state_dict(dict(state), strict=False)
