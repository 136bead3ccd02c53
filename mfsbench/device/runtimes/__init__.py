"""Inference runtimes behind one protocol, and the registry that names them.

Names are the labels records carry: ``torch-eager``, ``onnxruntime``, ``openvino`` (f32 forced),
``openvino-bf16`` (OpenVINO's default precision, bf16 on CPUs with AVX-512 BF16/AMX), ``litert``.
OpenVINO's two variants are separate names because its default silently changes the numbers
(max abs diff 2e-4 instead of 2e-7) and the speed (about 2x): a table must never mix them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from mfsbench.errors import BadInputError, MfsbenchError
from mfsbench.device.runtimes.base import (
    Prepared,
    Runtime,
    SimplePrepared,
    TensorInfo,
    example_inputs,
)


def _torch_eager() -> Runtime:
    from mfsbench.device.runtimes.torch_eager import TorchEagerRuntime

    return TorchEagerRuntime()


def _onnxruntime() -> Runtime:
    from mfsbench.device.runtimes.onnxruntime import OnnxRuntime

    return OnnxRuntime()


def _openvino_f32() -> Runtime:
    from mfsbench.device.runtimes.openvino import OpenVinoRuntime

    return OpenVinoRuntime(precision="f32")


def _openvino_bf16() -> Runtime:
    from mfsbench.device.runtimes.openvino import OpenVinoRuntime

    return OpenVinoRuntime(precision=None)


def _litert() -> Runtime:
    from mfsbench.device.runtimes.litert import LiteRtRuntime

    return LiteRtRuntime()


_FACTORIES: dict[str, Callable[[], Runtime]] = {
    "torch-eager": _torch_eager,
    "onnxruntime": _onnxruntime,
    "openvino": _openvino_f32,
    "openvino-bf16": _openvino_bf16,
    "litert": _litert,
}


def runtime_names() -> list[str]:
    """Every registered runtime name, installed or not."""
    return list(_FACTORIES)


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``.

    Raises:
        BadInputError: unknown name; the message lists the choices (and a close match).
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_FACTORIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise BadInputError(f"unknown runtime {name!r}.{hint} Choices: {', '.join(_FACTORIES)}.") from None
    return factory()


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
    "Prepared",
    "Runtime",
    "SimplePrepared",
    "TensorInfo",
    "available_runtimes",
    "example_inputs",
    "get_runtime",
    "runtime_names",
]
