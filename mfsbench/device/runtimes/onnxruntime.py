"""onnxruntime on the CPU execution provider, configured the way its perf tool is.

``intra_op_num_threads`` is the thread budget; ``inter_op_num_threads = 1`` with sequential
execution because one image at a time has no independent branches worth a second pool, and a
second pool would exceed the budget. ``ORT_ENABLE_ALL`` is set explicitly so a change of
onnxruntime's default cannot change what is measured. The wheel ships no ``onnxruntime_perf_test``
(deployment notes §4), so desktop timing goes through this Python API.

The exported graph matters more than any setting: before :func:`mfsbench.export.onnx.explicit_biases`
most student convs could not enter the NCHWc kernels (14.9–24.8 ms; 10.6–10.8 ms after, 7.7 ms
fastest). The numbers below predate that fix; their ratios are what they show.

Settings tried on the student frame stage (interleaved A/B medians, shared 2-core AMD EPYC with
AVX2/FMA only, other jobs running; see the issue-5 report): ``ORT_ENABLE_EXTENDED`` 60.1 ms vs
``ORT_ENABLE_ALL`` 56.5 ms (ALL keeps the NCHWc layout transformer: disabling it gave 63.4 vs
55.4 ms); ``session.intra_op.allow_spinning = 0`` 35.4 / 33.7 vs 56.5 / 55.4 ms in two contended
runs but 20.4 vs 18.6 ms in a calmer one. Spinning only costs when another process wants the
cores, and turning it off adds a wake-up per op on an idle machine, so the default (spinning) is
kept and ``OnnxRuntime(allow_spinning=False)`` is there for loaded machines.

What ran is read back, not assumed (:data:`mfsbench.device.axis.READBACK_KEYS`): the timed session
itself writes its optimised graph (``optimized_model_filepath`` in a temporary directory, weights to
a side file so only the graph is parsed), i.e. the graph after every ``ORT_ENABLE_ALL`` rewrite
(QDQ fusion into ``QLinearConv``, NCHWc layout, conv+activation fusion) that the CPU provider
executes. Its matrix ops are counted by the arithmetic their kernel does: :data:`INT8_MATRIX_OPS`
multiply 8-bit operands whatever their declared outputs; :data:`FLOAT_MATRIX_OPS` (``Conv``,
``com.microsoft.nchwc`` ``Conv``, ``FusedConv``, ``Gemm``, ``MatMul``…) compute in the element
type of their data input, followed through the graph from the inputs, initialisers and value infos
(a ``Conv`` fed by ``DequantizeLinear`` is fp32: int8 in the file, not executed). The graph read
back is the one the session executes: its matrix kernels are those of the session's profiler trace
(``tests/test_precision_readback.py``). Writing the graph happens once, inside session creation, and
the run path is untouched (fp32 student frame stage, interleaved: 8.3–9.0 ms p50 without, 8.6–9.4 ms
with, within this machine's noise); it adds to the prepare ("init") time the write of the graph and
its weights (about 7 ms for the 2 MB student; a SimSwap-sized file writes its hundreds of MB once)
plus the parse, which ``info["readback_ms"]`` holds. Ops inside control-flow subgraphs
(``If``/``Loop`` bodies) are not counted; no zoo stage has any.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
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
from mfsbench.device.runtimes.profiling import OpProfile, aggregate
from mfsbench.optional import require

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64"}

#: what this runtime can be asked to compute: the file decides (an fp32 or a QDQ int8 export)
COMPUTES = ("fp32", "int8")

#: kernels that multiply 8-bit integers (uint8/int8 operands, integer accumulation)
INT8_MATRIX_OPS = frozenset({
    "QLinearConv", "QLinearConvTranspose", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger",
    "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention",
})
#: kernels that compute in the element type of their first (data) input
FLOAT_MATRIX_OPS = frozenset({
    "Conv", "ConvTranspose", "FusedConv", "NhwcFusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul",
    "TransposeMatMul",
})
#: operator domains whose ops the names above mean (ONNX, Microsoft contrib, ORT's NCHWc layout)
_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft", "com.microsoft.nchwc"})
#: ONNX TensorProto element types → numpy-style names (what axis.axis_precision reads)
_ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 10: "float16", 16: "bfloat16", 6: "int32", 7: "int64"}
_FLOAT, _UINT8, _INT64 = 1, 2, 7


class OnnxRuntime:
    """``onnxruntime.InferenceSession`` with the CPU provider."""

    name = "onnxruntime"
    package = "onnxruntime"
    module = "onnxruntime"
    artifact = "onnx"

    def __init__(self, compute: str = "fp32", allow_spinning: bool = True) -> None:
        #: what the cell's plan asks for (fp32 or int8); the file decides what runs, and
        #: ``prepare`` reads back what did (``info["executed_precision"]``)
        self.compute = check_compute(self.name, compute, COMPUTES)
        #: ``False`` sets ``session.intra_op.allow_spinning = 0`` (see the module docstring).
        self.allow_spinning = allow_spinning

    def _options(self, ort: Any, threads: int) -> Any:
        check_threads(threads)
        so = ort.SessionOptions()
        if not self.allow_spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return so

    def profile(self, artifact_path: str | Path, threads: int, inputs: dict[str, np.ndarray],
                runs: int) -> OpProfile:
        """Kernel time per operator from ONNX Runtime's JSON trace, same session settings as timed.

        Node names and types are those of the *optimised* graph (fused convs, NCHWc reorders), i.e.
        what actually ran. ``runs + 1`` inferences are traced; every run executes each node once, so
        the first run's events (allocations, first touches) are dropped by count.
        """
        ort = require("onnxruntime", self.package, f"the {self.name} runtime")
        so = self._options(ort, threads)
        with tempfile.TemporaryDirectory(prefix="mfsbench-ort-profile-") as tmp:
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(tmp) / "ort")
            session = ort.InferenceSession(str(artifact_path), so, providers=["CPUExecutionProvider"])
            for _ in range(runs + 1):
                session.run(None, inputs)
            trace = json.loads(Path(session.end_profiling()).read_text())
        events = [(e["name"][: -len("_kernel_time")], e["args"]["op_name"], e["dur"] / 1000.0)
                  for e in trace if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
        return aggregate(events[len(events) // (runs + 1):], runs, f"onnxruntime {ort.__version__} profiler")

    def prepare(self, artifact_path: str | Path, threads: int, *, read_back: bool = True) -> SimplePrepared:
        """A session on ``threads`` threads. With ``read_back`` (default) the session itself writes its
        optimised graph and ``info`` holds what its matrix ops compute; without, ``info`` lacks the
        read-back keys and :meth:`read_back` supplies them from a twin session, so that a cold
        ``prepare`` can be timed without the graph write and the onnx import."""
        ort = require("onnxruntime", self.package, f"the {self.name} runtime")
        so = self._options(ort, threads)
        readback: dict[str, Any] = {}
        if read_back:
            with tempfile.TemporaryDirectory(prefix="mfsbench-ort-optimised-") as tmp:
                optimised = Path(tmp) / "optimised.onnx"
                _write_optimised(so, optimised)
                session = ort.InferenceSession(str(artifact_path), so, providers=["CPUExecutionProvider"])
                readback = self._parse(optimised, "the timed session")
        else:
            session = ort.InferenceSession(str(artifact_path), so, providers=["CPUExecutionProvider"])
        infos = [
            TensorInfo(
                i.name,
                tuple(d if isinstance(d, int) else None for d in i.shape),
                _ORT_DTYPES.get(i.type, "float32"),
            )
            for i in session.get_inputs()
        ]

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            check_inputs(infos, inputs)
            return list(session.run(None, inputs))

        info: dict[str, Any] = {
            "threads": threads,
            "requested_precision": self.compute,
            **readback,
            "providers": session.get_providers(),
            "graph_optimization": "ORT_ENABLE_ALL",
            "allow_spinning": self.allow_spinning,
            "onnxruntime": ort.__version__,
        }
        return SimplePrepared(infos, run, info)

    def read_back(self, artifact_path: str | Path, threads: int) -> dict[str, Any]:
        """What a session with exactly the timed options computes, read from the optimised graph it
        writes (a twin of the timed session: same file, options and provider, so the same rewrites)."""
        ort = require("onnxruntime", self.package, f"the {self.name} runtime")
        so = self._options(ort, threads)
        with tempfile.TemporaryDirectory(prefix="mfsbench-ort-optimised-") as tmp:
            optimised = Path(tmp) / "optimised.onnx"
            _write_optimised(so, optimised)
            ort.InferenceSession(str(artifact_path), so, providers=["CPUExecutionProvider"])
            return self._parse(optimised, "a twin of the timed session (same file and options)")

    def _parse(self, optimised: Path, which: str) -> dict[str, Any]:
        onnx = require("onnx", "onnx", f"the {self.name} precision read-back")
        ort = require("onnxruntime", self.package, f"the {self.name} runtime")
        start = time.perf_counter()
        graph = onnx.load(str(optimised), load_external_data=False).graph
        readback = read_matrix_ops(graph)
        readback_ms = (time.perf_counter() - start) * 1000.0
        return {
            **readback,
            "precision": readback["executed_precision"],
            "precision_source": (f"onnxruntime {ort.__version__} optimised graph of {which} "
                                 "(ORT_ENABLE_ALL, optimized_model_filepath): "
                                 f"{readback['precision_source']}"),
            "readback_ms": round(readback_ms, 2),
        }


def _write_optimised(so: Any, path: Path) -> None:
    """Have the session built with ``so`` write its optimised graph to ``path`` (weights beside it)."""
    so.optimized_model_filepath = str(path)
    # initialisers to a side file: the read-back parses only the graph, even for a 1 GB SimSwap
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                path.stem + ".weights")
    so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    # ORT warns on every such write that an NCHWc graph is hardware specific: we only read it here
    so.log_severity_level = 3


def element_types(graph: Any) -> dict[str, int]:
    """ONNX element type of every tensor of ``graph`` that can be known.

    From the declared inputs, outputs, value infos and initialisers, then forward through the nodes
    (ORT writes them in execution order) for outputs ORT left undeclared (its NCHWc and fused
    nodes): quantise/dequantise/cast produce their declared type, ``QLinear*`` ops keep their
    8-bit input type, everything else the type of its first typed input.
    """
    types: dict[str, int] = {}
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types[value.name] = value.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    for node in graph.node:
        produced = _output_types(node, [types.get(name) for name in node.input])
        for name, elem in zip(node.output, produced, strict=False):
            if name and name not in types and elem:
                types[name] = elem
    return types


def _attribute(node: Any, name: str) -> int | None:
    found = [a.i for a in node.attribute if a.name == name]
    return found[0] if found else None


def _output_types(node: Any, inputs: list[int | None]) -> list[int | None]:
    op = node.op_type
    known = [t for t in inputs if t]
    fixed: dict[str, list[int | None]] = {
        # DequantizeLinear gives its scale's type, QuantizeLinear its zero point's (uint8 without one)
        "DequantizeLinear": [inputs[1] if len(inputs) > 1 and inputs[1] else _FLOAT],
        "QuantizeLinear": [_attribute(node, "output_dtype")
                           or (inputs[2] if len(inputs) > 2 and inputs[2] else _UINT8)],
        "DynamicQuantizeLinear": [_UINT8, _FLOAT, _UINT8],
        "Cast": [_attribute(node, "to")],
        "Shape": [_INT64],
        "Size": [_INT64],
    }
    if op in fixed:
        return fixed[op]
    if op.startswith("QLinear") or op in INT8_MATRIX_OPS:
        known = [t for t in known if t in (2, 3)] or known  # the 8-bit operand, not a float scale
    return [known[0] if known else None] * len(node.output)


def read_matrix_ops(graph: Any) -> dict[str, Any]:
    """Read-back of an ONNX graph's matrix ops: the READBACK_KEYS plus what they are.

    ``matrix_ops`` counts them by ``domain.op_type``; ``dequantized_weight_ops`` counts float
    matrix ops whose weights come out of a ``DequantizeLinear`` (int8 stored, fp32 executed).
    """
    types = element_types(graph)
    producer = {out: node.op_type for node in graph.node for out in node.output}
    computed: list[str] = []
    kinds: Counter[str] = Counter()
    dequantized = 0
    for node in graph.node:
        if node.domain not in _DOMAINS or node.op_type not in INT8_MATRIX_OPS | FLOAT_MATRIX_OPS:
            continue
        kinds[f"{node.domain}.{node.op_type}" if node.domain else node.op_type] += 1
        if node.op_type in INT8_MATRIX_OPS:
            computed.append("int8")
            continue
        elem = types.get(node.input[0]) if node.input else None
        computed.append(_ELEM_TYPES.get(elem, "unknown") if elem else "unknown")
        if len(node.input) > 1 and producer.get(node.input[1]) == "DequantizeLinear":
            dequantized += 1
    readback = precision_readback(computed, "matrix ops by kernel (QLinear*/…Integer = int8) and data "
                                            "input element type")
    return {**readback, "matrix_ops": dict(sorted(kinds.items())), "dequantized_weight_ops": dequantized}
