"""Inference runtimes behind one protocol, and the registry that names them.

Names are the labels records carry: ``torch-eager``, ``onnxruntime``, ``openvino``, ``litert``.
What a runtime is asked to *compute* (``fp32``, ``bf16``, ``fp16``, ``int8``: the ``compute`` of a
:class:`mfsbench.device.axis.CellPlan`) is a constructor argument, never part of the name: one
name, one runtime, and the precision it really ran is read back into ``Prepared.info``
(:data:`mfsbench.device.axis.READBACK_KEYS`). There is no ``openvino-bf16`` any more:
``get_runtime("openvino", compute="bf16")`` replaces it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from mfsbench.device.runtimes.base import (
    Prepared,
    Runtime,
    SimplePrepared,
    TensorInfo,
    example_inputs,
)
from mfsbench.errors import BadInputError, MfsbenchError


def _torch_eager(compute: str) -> Runtime:
    from mfsbench.device.runtimes.torch_eager import TorchEagerRuntime

    return TorchEagerRuntime(compute=compute)


def _onnxruntime(compute: str) -> Runtime:
    from mfsbench.device.runtimes.onnxruntime import OnnxRuntime

    return OnnxRuntime(compute=compute)


def _openvino(compute: str) -> Runtime:
    from mfsbench.device.runtimes.openvino import OpenVinoRuntime

    return OpenVinoRuntime(compute=compute)


def _litert(compute: str) -> Runtime:
    from mfsbench.device.runtimes.litert import LiteRtRuntime

    return LiteRtRuntime(compute=compute)


#: what a runtime can be asked to compute (``CellPlan.compute``; ``fp16-weights`` is an fp16 *file*
#: computed in fp32, so it is asked for ``fp32``).
COMPUTES: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")

#: name → factory taking the ``compute`` request; each runtime refuses (BadInputError) a request it
#: has no kernels for, and reads back what ran whatever was asked.
_FACTORIES: dict[str, Callable[[str], Runtime]] = {
    "torch-eager": _torch_eager,
    "onnxruntime": _onnxruntime,
    "openvino": _openvino,
    "litert": _litert,
}


def runtime_names() -> list[str]:
    """Every registered runtime name, installed or not."""
    return list(_FACTORIES)


def get_runtime(name: str, compute: str = "fp32") -> Runtime:
    """The runtime called ``name``, asked to compute ``compute`` (one of :data:`COMPUTES`).

    Raises:
        BadInputError: unknown name (the message lists the choices and a close match) or an unknown
            ``compute``.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_FACTORIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise BadInputError(f"unknown runtime {name!r}.{hint} Choices: {', '.join(_FACTORIES)}.") from None
    if compute not in COMPUTES:
        raise BadInputError(f"unknown compute precision {compute!r}; choose one of {', '.join(COMPUTES)}.")
    return factory(compute)


def available_runtimes() -> list[str]:
    """Runtimes whose package imports here (checked by preparing nothing, only importing)."""
    from mfsbench.optional import require

    found = []
    for name in _FACTORIES:
        runtime = get_runtime(name)
        try:
            require(runtime.module, runtime.package, name)
        except MfsbenchError:
            continue
        found.append(name)
    return found


__all__ = [
    "COMPUTES",
    "Prepared",
    "Runtime",
    "SimplePrepared",
    "TensorInfo",
    "available_runtimes",
    "example_inputs",
    "get_runtime",
    "runtime_names",
]
