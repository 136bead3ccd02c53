"""OpenVINO on the CPU plugin, in two variants that are never labelled the same.

``openvino`` forces ``INFERENCE_PRECISION_HINT=f32``: matches torch to about 1e-7. ``openvino-bf16``
keeps the plugin's default, which is bf16 on CPUs with AVX-512 BF16 / AMX (max abs diff 2e-4 on the
tiny U-Net, about 2x faster; deployment notes §5) and f32 on CPUs without (an AMD EPYC here).
The precision the compiled model *reports* is stored in ``info``, so
which one ran is always visible.
Threads go through ``INFERENCE_NUM_THREADS`` with the ``LATENCY`` hint (one stream), the
configuration that matches one-frame-at-a-time video. Tried on the student frame stage
(interleaved A/B medians on the shared 2 cores; issue-5 report): ``ENABLE_CPU_PINNING`` 20.0 vs
23.7 ms and an explicit ``NUM_STREAMS=1`` 17.3 vs 23.7 ms, both within that run's noise (p10s
13.7 / 13.3 vs 15.2 ms), so neither is set. This CPU (AVX2/FMA, no AVX-512) has no bf16: the
``openvino-bf16`` variant reports f32 and times the same as ``openvino``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.optional import require
from mfsbench.device.runtimes.base import SimplePrepared, TensorInfo, check_inputs, check_threads
from mfsbench.device.runtimes.profiling import OpProfile, aggregate


class OpenVinoRuntime:
    """``openvino.Core().compile_model`` on ``CPU``; reads ONNX or IR (``.xml``) directly."""

    package = "openvino"
    module = "openvino"
    artifact = "onnx"

    def __init__(self, precision: str | None = "f32") -> None:
        #: ``"f32"`` forces fp32; ``None`` keeps the plugin's default (bf16 where supported).
        self.precision = precision
        self.name = "openvino" if precision == "f32" else "openvino-bf16"

    def _config(self, threads: int) -> dict[str, Any]:
        check_threads(threads)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        if self.precision is not None:
            config["INFERENCE_PRECISION_HINT"] = self.precision
        return config

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
            "precision": _type_name(compiled.get_property("INFERENCE_PRECISION_HINT")),
            "requested_precision": self.precision or "default",
            "inference_num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "openvino": ov.__version__,
        }
        return SimplePrepared(infos, run, info)


def _type_name(value: Any) -> str:
    """``f32`` / ``bf16`` from an ``ov.Type`` (its ``str`` is ``<Type: 'float32'>``)."""
    to_string = getattr(value, "to_string", None)
    return str(to_string()) if callable(to_string) else str(value)
