"""PyTorch eager mode: the reference every exported runtime is compared against.

``torch.set_num_threads`` is process-wide, so preparing sets it and every run re-asserts it: a
later ``prepare`` with another count (or ``torch.utils.benchmark``'s default of 1, see
pytorch/pytorch#58585) would otherwise change an earlier model's speed silently. Runs use
``torch.inference_mode`` so autograd bookkeeping is not timed.

Eager mode runs each layer in its parameters' dtype, so what ran is read back from the module
(:data:`mfsbench.device.axis.READBACK_KEYS`): convolution and linear modules counted by their
weight dtype. A ``torch.export`` program has no such modules; its weight tensors (parameters of two
or more dimensions) are counted instead, and ``precision_source`` says which was read.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.device.runtimes.base import (
    SimplePrepared,
    TensorInfo,
    check_compute,
    check_inputs,
    check_threads,
    precision_readback,
)
from mfsbench.errors import BadInputError
from mfsbench.optional import require

#: what this runtime can be asked to compute: the fp32 module only (see axis.NOT_SUPPORTED)
COMPUTES = ("fp32",)


class TorchEagerRuntime:
    """Runs an ``nn.Module`` (or a ``torch.export`` ``.pt2`` file) eagerly on the CPU."""

    name = "torch-eager"
    package = "torch"
    module = "torch"
    artifact = "module"

    def __init__(self, compute: str = "fp32") -> None:
        #: what the cell's plan asks for; ``prepare`` reads back what the module computes
        self.compute = check_compute(self.name, compute, COMPUTES)

    def prepare(
        self,
        artifact_path: Any,
        threads: int,
        input_shapes: dict[str, tuple[int, ...]] | None = None,
    ) -> SimplePrepared:
        torch = require("torch", self.package, f"the {self.name} runtime")
        check_threads(threads)
        torch.set_num_threads(threads)
        if isinstance(artifact_path, torch.nn.Module):
            module = artifact_path
        elif isinstance(artifact_path, (str, Path)) and str(artifact_path).endswith(".pt2"):
            module = torch.export.load(str(artifact_path)).module()
        else:
            raise BadInputError(
                f"torch-eager runs an nn.Module or a torch.export .pt2 file, got {artifact_path!r}."
            )
        if hasattr(module, "eval"):
            module.eval()
        names = _input_names(module, input_shapes)
        shapes = input_shapes or {}
        infos = [TensorInfo(n, tuple(shapes[n]) if n in shapes else None) for n in names]

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            check_inputs(infos, inputs)
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            with torch.inference_mode():
                out = module(*(torch.from_numpy(inputs[n]) for n in names))
            return [t.detach().numpy().copy() for t in _flatten(out)]

        readback = read_matrix_ops(module, torch)
        info = {"threads": threads, "precision": readback["executed_precision"],
                "requested_precision": self.compute, **readback, "torch": torch.__version__}
        return SimplePrepared(infos, run, info)


def read_matrix_ops(module: Any, torch: Any) -> dict[str, Any]:
    """READBACK_KEYS of an eager module: conv/linear modules by weight dtype (or, when there are
    none, e.g. a ``torch.export`` graph module, its weight tensors of two or more dimensions)."""
    layers = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
    dtypes = [str(m.weight.dtype).removeprefix("torch.") for m in module.modules()
              if isinstance(m, layers) and getattr(m, "weight", None) is not None]
    if dtypes:
        return precision_readback(dtypes, "torch module parameter dtypes (conv and linear weights)")
    weights = [str(p.dtype).removeprefix("torch.") for p in module.parameters() if p.ndim >= 2]
    return precision_readback(weights, "torch parameter dtypes (tensors of >= 2 dims; no conv/linear "
                                       "modules to read)")


def _input_names(module: Any, input_shapes: dict[str, tuple[int, ...]] | None) -> list[str]:
    """Positional parameter names of ``forward``; given shapes fix the order when it is opaque."""
    try:
        params = inspect.signature(module.forward).parameters.values()
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    if not names or (input_shapes and set(input_shapes) != set(names)):
        if not input_shapes:
            raise BadInputError("cannot read the module's input names; pass input_shapes.")
        names = list(input_shapes)
    return names


def _flatten(out: Any) -> list[Any]:
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _flatten(item)]
    if isinstance(out, dict):
        return [t for item in out.values() for t in _flatten(item)]
    return [out]
