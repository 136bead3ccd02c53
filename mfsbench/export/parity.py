"""Run an exported artifact in its own runtime and compare it with torch, output by output.

A file that converts but computes something else is worse than no file, so every export ends here.
Runtimes: onnxruntime (CPU EP), OpenVINO with ``INFERENCE_PRECISION_HINT=f32`` (on AVX512_BF16 CPUs
it otherwise runs bf16 and fp32 parity would fail for the runtime's reasons, not the file's), and
the LiteRT interpreter (``ai_edge_litert``; int8 I/O is (de)quantized with the file's own scales).

Metrics per output, over all samples: ``max_abs_err`` and PSNR. Outputs already in [0, 1] (swapped
face, mask) are compared as they are; others (identity kernels) are divided by the reference's peak
``max |y|`` first, so one tolerance table applies to every stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.export.base import ExportedArtifact, require

#: precision → (metric, bound, direction); fp16/int8 are judged by PSNR because their errors are
#: expected, only their size matters.
TOLERANCES: dict[str, tuple[str, float]] = {
    "fp32": ("max_abs_err", 1e-4),
    "fp16": ("psnr_db", 40.0),
    "int8": ("psnr_db", 30.0),
}
PSNR_CAP_DB = 200.0  # identical outputs: a finite number JSON can hold


@dataclass
class OutputParity:
    name: str
    max_abs_err: float
    psnr_db: float
    scale: float  # 1.0 for outputs in [0, 1]; otherwise the reference's max |y|


@dataclass
class ParityResult:
    format: str
    precision: str
    runtime: str
    samples: int
    outputs: list[OutputParity] = field(default_factory=list)

    @property
    def max_abs_err(self) -> float:
        """Worst scaled max abs error over all outputs."""
        return max(o.max_abs_err / o.scale for o in self.outputs)

    @property
    def psnr_db(self) -> float:
        """Worst PSNR over all outputs."""
        return min(o.psnr_db for o in self.outputs)

    def failure(self) -> str | None:
        """``None`` within tolerance, else one sentence for the error record."""
        metric, bound = TOLERANCES[self.precision]
        value = getattr(self, metric)
        ok = value <= bound if metric == "max_abs_err" else value >= bound
        if ok:
            return None
        sign = "above" if metric == "max_abs_err" else "below"
        return (
            f"{self.format} {self.precision} parity vs torch: {metric} {value:.3g} is {sign} the "
            f"tolerance {bound:g}"
        )

    def metrics(self) -> dict[str, float]:
        return {"max_abs_err": self.max_abs_err, "psnr_db": self.psnr_db}


def _numpy(values: Sequence[Any]) -> list[np.ndarray]:
    out = []
    for value in values:
        array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        out.append(np.ascontiguousarray(array, dtype=np.float32))
    return out


def _threads() -> int:
    return max(1, torch.get_num_threads())


class _Runner(Protocol):
    """``__call__(inputs) -> outputs``: one loaded artifact, inputs/outputs in artifact order."""

    runtime: str

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...


class _OrtRunner:
    runtime = "onnxruntime"

    def __init__(self, artifact: ExportedArtifact) -> None:
        ort = require("onnxruntime", "onnxruntime", "ONNX parity")
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        self.session = ort.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(None, dict(zip(self.names, inputs, strict=True))))


class _OpenVinoRunner:
    runtime = "openvino (CPU, INFERENCE_PRECISION_HINT=f32)"

    def __init__(self, artifact: ExportedArtifact) -> None:
        ov = require("openvino", "openvino", "OpenVINO parity")
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": _threads()}
        self.compiled = ov.Core().compile_model(str(artifact.path), "CPU", config)

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        result = self.compiled(inputs)
        return [np.asarray(result[port]) for port in self.compiled.outputs]


class _LiteRtRunner:
    runtime = "ai_edge_litert Interpreter"

    def __init__(self, artifact: ExportedArtifact) -> None:
        from mfsbench.export.tflite import SIGNATURE

        litert = require("ai_edge_litert.interpreter", "ai-edge-litert", "TFLite parity")
        self.interpreter = litert.Interpreter(model_path=str(artifact.path), num_threads=_threads())
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        self.inputs = artifact.input_names
        self.outputs = artifact.output_names
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        feed = {}
        for name, value in zip(self.inputs, inputs, strict=True):
            detail = self.input_details[name]
            dtype = np.dtype(detail["dtype"])
            if np.issubdtype(dtype, np.integer):
                scale, zero = detail["quantization"]
                info = np.iinfo(dtype)
                feed[name] = np.clip(np.round(value / scale) + zero, info.min, info.max).astype(dtype)
            else:
                feed[name] = value
        result = self.runner(**feed)
        outs = []
        for name in self.outputs:
            value = np.asarray(result[name])
            if np.issubdtype(value.dtype, np.integer):
                scale, zero = self.output_details[name]["quantization"]
                value = (value.astype(np.float32) - zero) * scale
            outs.append(value.astype(np.float32))
        return outs


_RUNNERS: dict[str, Callable[[ExportedArtifact], _Runner]] = {
    "onnx": _OrtRunner,
    "openvino": _OpenVinoRunner,
    "tflite": _LiteRtRunner,
}


def run_artifact(artifact: ExportedArtifact, samples: Sequence[Sequence[Any]]) -> list[list[np.ndarray]]:
    """Outputs of ``artifact`` in its runtime, one list of arrays per sample."""
    runner = _RUNNERS[artifact.format](artifact)
    return [runner(_numpy(sample)) for sample in samples]


def _psnr(mse: float, peak: float) -> float:
    if mse <= 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10 * math.log10(peak * peak / mse))


def check_parity(
    module: nn.Module, artifact: ExportedArtifact, samples: Sequence[Sequence[Any]]
) -> ParityResult:
    """Compare ``artifact`` with ``module`` (torch, fp32) on every sample (a tuple of stage inputs)."""
    runner = _RUNNERS[artifact.format](artifact)
    got: list[list[np.ndarray]] = []
    want: list[list[np.ndarray]] = []
    module.eval()
    with torch.no_grad():
        for sample in samples:
            # (C,H,W) crops get the batch axis every stage input has
            arrays = [a[None] if a.ndim == 3 else a for a in _numpy(sample)]
            want.append(_numpy(module(*(torch.from_numpy(a) for a in arrays))))
            got.append(runner(arrays))
    result = ParityResult(artifact.format, artifact.precision, runner.runtime, len(samples))
    for index, name in enumerate(artifact.output_names):
        ref = [w[index] for w in want]
        out = [g[index].reshape(r.shape) for g, r in zip(got, ref, strict=True)]
        lo, hi = min(float(r.min()) for r in ref), max(float(r.max()) for r in ref)
        unit = lo >= -1e-6 and hi <= 1 + 1e-6
        scale = 1.0 if unit else max(abs(lo), abs(hi), 1e-12)
        err = max(float(np.abs(o - r).max()) for o, r in zip(out, ref, strict=True))
        squared = [((o - r) / scale).ravel() ** 2 for o, r in zip(out, ref, strict=True)]
        mse = float(np.mean(np.concatenate(squared)))
        result.outputs.append(OutputParity(name, err, _psnr(mse, 1.0), scale))
    return result
