"""Run an exported artifact in its own runtime and compare it with torch, output by output.

A file that converts but computes something else is worse than no file, so every export ends here.
Artifacts run through the same :mod:`mfsbench.device.runtimes` adapters that are timed (one implementation
per backend, see :data:`PARITY_RUNTIME`): onnxruntime (CPU EP), OpenVINO with
``INFERENCE_PRECISION_HINT=f32``, and the LiteRT interpreter (int8 I/O is (de)quantized there
with the file's own scales; outputs in signature order).

Metrics per output, over all samples: ``max_abs_err`` and PSNR. Outputs already in [0, 1] (swapped
face, mask) are compared as they are; others (identity kernels) are divided by the reference's peak
``max |y|`` first, so one tolerance table applies to every stage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.export.base import ExportedArtifact
from mfsbench.device.runtimes.base import Prepared

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


#: export format → the runtime adapter (``mfsbench.device.runtimes``) that verifies it: the same code that
#: times it, so parity and latency are of one thing. OpenVINO is the f32-pinned variant; on
#: AVX512_BF16 CPUs its default runs bf16 and fp32 parity would fail for the runtime's reasons.
PARITY_RUNTIME: dict[str, str] = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}


def prepare_artifact(artifact: ExportedArtifact, threads: int | None = None) -> tuple[str, Prepared]:
    """``(runtime name, prepared model)`` for ``artifact`` in its parity runtime."""
    from mfsbench.device.runtimes import get_runtime

    name = PARITY_RUNTIME[artifact.format]
    return name, get_runtime(name).prepare(artifact.path, threads or _threads())


def _run(prepared: Prepared, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Positional inputs → the prepared model's named inputs (the artifact's input order)."""
    names = [info.name for info in prepared.inputs]
    return prepared.run(dict(zip(names, arrays, strict=True)))


def run_artifact(artifact: ExportedArtifact, samples: Sequence[Sequence[Any]]) -> list[list[np.ndarray]]:
    """Outputs of ``artifact`` in its runtime, one list of arrays per sample."""
    _, prepared = prepare_artifact(artifact)
    return [_run(prepared, _numpy(sample)) for sample in samples]


def _psnr(mse: float, peak: float) -> float:
    if mse <= 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10 * math.log10(peak * peak / mse))


def check_parity(
    module: nn.Module, artifact: ExportedArtifact, samples: Sequence[Sequence[Any]]
) -> ParityResult:
    """Compare ``artifact`` with ``module`` (torch, fp32) on every sample (a tuple of stage inputs)."""
    runtime, prepared = prepare_artifact(artifact)
    got: list[list[np.ndarray]] = []
    want: list[list[np.ndarray]] = []
    module.eval()
    with torch.no_grad():
        for sample in samples:
            # (C,H,W) crops get the batch axis every stage input has
            arrays = [a[None] if a.ndim == 3 else a for a in _numpy(sample)]
            want.append(_numpy(module(*(torch.from_numpy(a) for a in arrays))))
            got.append(_run(prepared, arrays))
    result = ParityResult(artifact.format, artifact.precision, runtime, len(samples))
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
