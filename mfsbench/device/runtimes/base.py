"""One protocol for every inference runtime, so the timing harness never knows which it drives.

A :class:`Runtime` turns an artefact (an ``nn.Module``, an ONNX file, an OpenVINO IR, a ``.tflite``)
into a :class:`Prepared` model; ``prepare`` is where sessions are created and graphs compiled, so
the harness can time it as *init* apart from inference. ``Prepared.run`` takes named float arrays
and returns a list of arrays that the caller owns (copies, never views of runtime buffers), so
outputs of different runtimes can be compared after the fact.

Heavy packages are imported inside ``prepare`` only: importing :mod:`mfsbench.device.runtimes` costs
nothing, and a missing package becomes a :class:`MissingDependencyError` that names the pip package
instead of an ``ImportError`` at start-up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mfsbench.device.axis import axis_precision, majority_precision
from mfsbench.errors import BadInputError


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of one model input; ``None`` in a shape is a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...] | None
    dtype: str = "float32"


@runtime_checkable
class Prepared(Protocol):
    """A model ready to run: what :meth:`Runtime.prepare` returns."""

    inputs: list[TensorInfo]
    #: What the runtime actually configured (precision, threads, providers), for the record.
    info: dict[str, Any]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One synchronous inference; outputs are owned by the caller."""
        ...


class Runtime(Protocol):
    """A backend that prepares artefacts; ``name`` is its registry key and its label in records."""

    name: str
    #: The pip distribution that provides it (named in the missing-dependency error).
    package: str
    #: The module imported to check that the package is installed.
    module: str
    #: The artefact format it consumes, for messages ("onnx", "tflite", "module").
    artifact: str

    def prepare(self, artifact_path: Any, threads: int) -> Prepared:
        """Load and compile ``artifact_path`` for ``threads`` CPU threads."""
        ...


@dataclass
class SimplePrepared:
    """A :class:`Prepared` built from a plain function; used by the adapters and by tests."""

    inputs: list[TensorInfo]
    fn: Any
    info: dict[str, Any] = field(default_factory=dict)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.fn(inputs)


def check_threads(threads: int) -> int:
    """Reject 0 or negative thread counts: every runtime reads 0 as "all cores", silently."""
    if not isinstance(threads, int) or threads < 1:
        raise BadInputError(f"threads must be a positive integer, got {threads!r}.")
    return threads


def check_inputs(expected: list[TensorInfo], given: dict[str, np.ndarray]) -> None:
    """Fail with one line naming the missing/unexpected inputs, before the runtime does cryptically."""
    names = {info.name for info in expected}
    if set(given) != names:
        raise BadInputError(
            f"inputs {sorted(given)} do not match the model's inputs {sorted(names)}; "
            "build them with mfsbench.device.runtimes.example_inputs(prepared)."
        )


def example_inputs(
    prepared: Prepared, seed: int = 0, shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, np.ndarray]:
    """Deterministic random inputs of the prepared model's shapes (dynamic dims need ``shapes``)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for info in prepared.inputs:
        shape = (shapes or {}).get(info.name) or info.shape
        if shape is None or any(d is None for d in shape):
            raise BadInputError(
                f"input {info.name!r} has a dynamic shape {info.shape}; pass shapes={{name: shape}}."
            )
        out[info.name] = rng.standard_normal(tuple(int(d) for d in shape)).astype(info.dtype)
    return out


def precision_readback(op_types: Iterable[str], source: str) -> dict[str, Any]:
    """The :data:`~mfsbench.device.axis.READBACK_KEYS` of ``Prepared.info`` from what ran.

    ``op_types`` has one entry per matrix operation (conv, matmul, gemm) of the executed graph: the
    element type it computes in, in the runtime's own spelling (``float32``, ``tensor(uint8)``,
    ``int8``…) or already an axis name; ``source`` says how the runtime read them. No matrix op at
    all gives ``executed_precision`` ``"unknown"`` (never a guess).
    """
    counts = Counter(axis_precision(name) for name in op_types)
    op_precisions = {name: counts[name] for name in sorted(counts)}
    return {"executed_precision": majority_precision(op_precisions), "op_precisions": op_precisions,
            "precision_source": source}


def check_compute(runtime: str, compute: str, supported: tuple[str, ...]) -> str:
    """``compute`` if ``runtime`` can be asked for it, else one-line BadInputError naming the choices.

    A runtime takes the precision its plan asks for (:class:`~mfsbench.device.axis.CellPlan`
    ``compute``) so the record can hold the request beside the read-back; a request the runtime
    has no kernels for is refused rather than silently run as something else.
    """
    if compute not in supported:
        raise BadInputError(
            f"{runtime} cannot be asked to compute {compute!r}; it runs {', '.join(supported)}"
        )
    return compute
