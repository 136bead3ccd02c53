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
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.optional import require
from mfsbench.device.runtimes.base import SimplePrepared, TensorInfo, check_inputs, check_threads
from mfsbench.device.runtimes.profiling import OpProfile, aggregate

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64"}


class OnnxRuntime:
    """``onnxruntime.InferenceSession`` with the CPU provider."""

    name = "onnxruntime"
    package = "onnxruntime"
    module = "onnxruntime"
    artifact = "onnx"

    def __init__(self, allow_spinning: bool = True) -> None:
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

    def prepare(self, artifact_path: str | Path, threads: int) -> SimplePrepared:
        ort = require("onnxruntime", self.package, f"the {self.name} runtime")
        so = self._options(ort, threads)
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
            "precision": "f32",
            "providers": session.get_providers(),
            "graph_optimization": "ORT_ENABLE_ALL",
            "allow_spinning": self.allow_spinning,
            "onnxruntime": ort.__version__,
        }
        return SimplePrepared(infos, run, info)
