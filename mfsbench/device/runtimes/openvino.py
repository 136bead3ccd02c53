"""OpenVINO on the CPU plugin; what it is asked to compute is a constructor argument, what it ran is
read back from the compiled model.

``OpenVinoRuntime(compute)`` sets ``INFERENCE_PRECISION_HINT`` from the cell's compute precision
(:data:`PRECISION_HINTS`): ``fp32`` → ``f32`` (matches torch to about 1e-7), ``bf16`` → ``bf16``,
``fp16`` → ``f16``, and ``int8`` → ``f32``: an int8 IR carries its own FakeQuantize ops (NNCF,
:mod:`mfsbench.export.openvino`), and the plugin runs the quantised convolutions in int8 whatever
the hint; the hint only governs the layers left in floating point. Without a hint the plugin picks
bf16 on CPUs with AVX-512 BF16 / AMX, so a hint is always set.

A hint is a request, not a result. After compiling, :func:`read_back` walks the *runtime* model
(``compiled.get_runtime_model()``: the executed graph after the plugin's fusions) and counts the
matrix operations (:data:`MATRIX_LAYER_TYPES`) by the precision of the data they compute on (rt_info
of the runtime model; why not ``runtimePrecision`` alone: :func:`read_back`), which is what
``Prepared.info["executed_precision"]`` and ``["op_precisions"]`` say; the compiled model's own
``INFERENCE_PRECISION_HINT`` is kept apart as ``inference_precision_hint``. Seen on this AVX2/FMA
CPU without AVX-512 (openvino 2026.4.1): a ``bf16`` or ``f16`` hint compiles to a model whose
convolutions all report ``f32`` (primitives ``brgconv_avx2_f32``) and whose compiled hint property
also reads ``f32``, so the read-back says fp32 and a sweep records the cell as not native instead of
timing f32 under a bf16 label. An NNCF int8 IR reads back ``u8`` data into ``i8``-weight
convolutions (``jit_avx2_I8``): int8 arithmetic, without VNNI on this CPU. An fp16-weight IR reads
back f32 data (``brgconv_avx2_f32``) with fp16 weights: fp32 arithmetic.

Threads go through ``INFERENCE_NUM_THREADS`` with the ``LATENCY`` hint (one stream), the
configuration that matches one-frame-at-a-time video; the compiled model's own thread count is
read back as ``inference_num_threads``. Tried on the student frame stage (interleaved A/B medians
on the shared 2 cores; issue-5 report): ``ENABLE_CPU_PINNING`` 20.0 vs 23.7 ms and an explicit
``NUM_STREAMS=1`` 17.3 vs 23.7 ms, both within that run's noise (p10s 13.7 / 13.3 vs 15.2 ms), so
neither is set.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.device.axis import axis_precision, majority_precision
from mfsbench.device.runtimes.base import SimplePrepared, TensorInfo, check_inputs, check_threads
from mfsbench.device.runtimes.profiling import OpProfile, aggregate
from mfsbench.errors import BadInputError
from mfsbench.optional import require

#: compute precision (:data:`mfsbench.device.runtimes.COMPUTES`) → ``INFERENCE_PRECISION_HINT``.
PRECISION_HINTS: dict[str, str] = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}

#: CPU-plugin node types (``layerType`` in the runtime model) counted as matrix operations. The
#: plugin compiles ``GroupConvolution`` (depthwise included) into ``Convolution`` nodes (primitive
#: ``…_dw_…``), so depthwise convolutions are counted, as they are in MAC counts; a ``MatMul`` with
#: constant weights becomes ``FullyConnected``. ``GroupConvolution`` stays listed for plugins that
#: keep the name.
MATRIX_LAYER_TYPES: frozenset[str] = frozenset(
    {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul"}
)


def _rt_text(rt_info: Any, key: str) -> str | None:
    """One rt_info entry as text (``OVAny.astype(str)``), None when the op has no such entry.

    Membership is tested first: indexing an rt_info map with a missing key *inserts* an empty
    entry (openvino 2026.4.1) instead of raising.
    """
    if key not in rt_info:
        return None
    value = rt_info[key]
    astype = getattr(value, "astype", None)
    return str(astype(str)) if callable(astype) else str(value)


def _precisions(text: str | None) -> str:
    """``"u8"`` → ``"int8"``; a multi-output list ``"f32,f32"`` → ``"fp32,fp32"``."""
    if not text:
        return "unknown"
    return ",".join(axis_precision(part.strip()) for part in text.split(","))


def _input_precision(op: Any, port: int) -> str:
    """The precision of what feeds ``op``'s input ``port``: its producer's ``outputPrecisions`` entry
    for that output, in the runtime model."""
    if op.get_input_size() <= port:
        return "none"
    source = op.input_value(port)
    produced = (_rt_text(source.get_node().get_rt_info(), "outputPrecisions") or "").split(",")
    index = source.get_index()
    return axis_precision(produced[index].strip()) if index < len(produced) and produced[index] else "unknown"


def read_back(compiled: Any, version: str) -> dict[str, Any]:
    """What the compiled model executes: its matrix ops counted by the precision they compute in.

    A matrix op's precision is that of its **data input** (port 0, read from the producer's
    ``outputPrecisions`` in the runtime model): the plugin picks the kernel by it, and the kernel
    name says the same (``brgconv_avx2_f32``, ``jit_avx2_I8``, ``…_bf16``). The op's own
    ``runtimePrecision`` is kept apart (``op_runtime_precisions``) and not used, because on
    openvino 2026.4.1 it follows the *weights* of an fp16-weight IR: convolutions that run
    ``brgconv_avx2_f32`` on f32 data report ``f16`` there, which would label f32 arithmetic fp16.

    Returns the :data:`mfsbench.device.axis.READBACK_KEYS` (``executed_precision``,
    ``op_precisions``, ``precision_source``) plus ``op_runtime_precisions``, ``op_weight_precisions``
    (port 1's producer: ``int8`` for NNCF weights, ``fp16`` for a compressed IR),
    ``op_output_precisions`` and ``matrix_primitives`` (ops by kernel name: which ISA ran).
    """
    counts: dict[str, Counter[str]] = {key: Counter() for key in ("data", "runtime", "weights", "output",
                                                                  "primitive")}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt_info = op.get_rt_info()
        if _rt_text(rt_info, "layerType") not in MATRIX_LAYER_TYPES:
            continue
        counts["data"][_input_precision(op, 0)] += 1
        counts["weights"][_input_precision(op, 1)] += 1
        counts["runtime"][_precisions(_rt_text(rt_info, "runtimePrecision"))] += 1
        counts["output"][_precisions(_rt_text(rt_info, "outputPrecisions"))] += 1
        counts["primitive"][_rt_text(rt_info, "primitiveType") or "unknown"] += 1
    op_precisions = dict(sorted(counts["data"].items()))
    return {
        "executed_precision": majority_precision(op_precisions),
        "op_precisions": op_precisions,
        "op_runtime_precisions": dict(sorted(counts["runtime"].items())),
        "op_weight_precisions": dict(sorted(counts["weights"].items())),
        "op_output_precisions": dict(sorted(counts["output"].items())),
        "matrix_primitives": dict(sorted(counts["primitive"].items())),
        "precision_source": f"openvino {version} runtime model rt_info: data-input outputPrecisions of "
                            f"{', '.join(sorted(MATRIX_LAYER_TYPES))} nodes",
    }


class OpenVinoRuntime:
    """``openvino.Core().compile_model`` on ``CPU``; reads ONNX or IR (``.xml``) directly."""

    name = "openvino"
    package = "openvino"
    module = "openvino"
    artifact = "onnx"

    def __init__(self, compute: str = "fp32") -> None:
        if compute not in PRECISION_HINTS:
            raise BadInputError(
                f"openvino cannot be asked to compute {compute!r}; choose one of {', '.join(PRECISION_HINTS)}"
            )
        #: what the cell asks for (fp32, bf16, fp16, int8); the read-back says what ran
        self.compute = compute
        #: the ``INFERENCE_PRECISION_HINT`` that request becomes
        self.precision_hint = PRECISION_HINTS[compute]

    def _config(self, threads: int) -> dict[str, Any]:
        check_threads(threads)
        return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                "INFERENCE_PRECISION_HINT": self.precision_hint}

    def profile(self, artifact_path: str | Path, threads: int, inputs: dict[str, np.ndarray],
                runs: int) -> OpProfile:
        """Per-layer time from OpenVINO's ``PERF_COUNT`` (executed layers of the compiled graph, after
        its fusions), same configuration as timed; one unprofiled warm-up inference first."""
        ov = require("openvino", self.package, f"the {self.name} runtime")
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(artifact_path)), "CPU",
                                      {**self._config(threads), "PERF_COUNT": True})
        request = compiled.create_infer_request()
        request.infer(inputs)
        events = []
        for _ in range(runs):
            request.infer(inputs)
            events += [(info.node_name, info.node_type, info.real_time.total_seconds() * 1000.0)
                       for info in request.profiling_info
                       if info.status == info.Status.EXECUTED]
        return aggregate(events, runs, f"openvino {ov.__version__} PERF_COUNT")

    def prepare(self, artifact_path: str | Path, threads: int) -> SimplePrepared:
        ov = require("openvino", self.package, f"the {self.name} runtime")
        core = ov.Core()
        model = core.read_model(str(artifact_path))
        compiled = core.compile_model(model, "CPU", self._config(threads))
        request = compiled.create_infer_request()
        infos = []
        for port in compiled.inputs:
            pshape = port.get_partial_shape()
            shape = tuple(d.get_length() if d.is_static else None for d in pshape)
            infos.append(TensorInfo(port.get_any_name(), shape, port.get_element_type().to_dtype().name))
        outputs = list(compiled.outputs)

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            check_inputs(infos, inputs)
            result = request.infer(inputs)
            # Copies: the request reuses its output buffers on the next call.
            return [np.array(result[port], copy=True) for port in outputs]

        info: dict[str, Any] = {
            "threads": threads,
            "compute": self.compute,
            "requested_precision_hint": self.precision_hint,
            # the compiled model's answer to the hint (a property, not the executed kernels)
            "inference_precision_hint": _type_name(compiled.get_property("INFERENCE_PRECISION_HINT")),
            "inference_num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "openvino": ov.__version__,
            **read_back(compiled, ov.__version__),
        }
        return SimplePrepared(infos, run, info)


def _type_name(value: Any) -> str:
    """``f32`` / ``bf16`` from an ``ov.Type`` (its ``str`` is ``<Type: 'float32'>``)."""
    to_string = getattr(value, "to_string", None)
    return str(to_string()) if callable(to_string) else str(value)
