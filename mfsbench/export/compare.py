"""Output-by-output comparison of a runtime's outputs with torch's, and the tolerance of each precision.

Torch-free on purpose: a device cell compares in the fresh process that timed the runtime (see
:mod:`mfsbench.device.cell`), and that process must not pay torch's import or memory to do it.

Metrics per output, over all samples: ``max_abs_err`` and PSNR. Outputs already in [0, 1] (swapped
face, mask) are compared as they are; others (identity kernels) are divided by the reference's peak
``max |y|`` first, so one tolerance table applies to every stage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: precision → (metric, bound, direction); fp16/int8 are judged by PSNR because their errors are
#: expected, only their size matters.
TOLERANCES: dict[str, tuple[str, float]] = {
    "fp32": ("max_abs_err", 1e-4),
    "bf16": ("psnr_db", 40.0),
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
    #: what the outputs were compared with (torch fp32; ONNX Runtime fp32 for a model card)
    reference: str = "torch fp32"

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
            f"{self.format} {self.precision} parity vs {self.reference}: {metric} {value:.3g} is {sign} the "
            f"tolerance {bound:g}"
        )

    def metrics(self) -> dict[str, float]:
        return {"max_abs_err": self.max_abs_err, "psnr_db": self.psnr_db}


def _psnr(mse: float, peak: float) -> float:
    if mse <= 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10 * math.log10(peak * peak / mse))


def compare_outputs(
    want: Sequence[Sequence[np.ndarray]], got: Sequence[Sequence[np.ndarray]], output_names: Sequence[str],
    *, fmt: str, precision: str, runtime: str, reference: str = "torch fp32",
) -> ParityResult:
    """Compare per-sample output lists ``got`` (the runtime's) with ``want`` (``reference``'s)."""
    result = ParityResult(fmt, precision, runtime, len(want), reference=reference)
    for index, name in enumerate(output_names):
        ref = [np.asarray(w[index], np.float32) for w in want]
        out = [np.asarray(g[index], np.float32).reshape(r.shape) for g, r in zip(got, ref, strict=True)]
        lo, hi = min(float(r.min()) for r in ref), max(float(r.max()) for r in ref)
        unit = lo >= -1e-6 and hi <= 1 + 1e-6
        scale = 1.0 if unit else max(abs(lo), abs(hi), 1e-12)
        err = max(float(np.abs(o - r).max()) for o, r in zip(out, ref, strict=True))
        squared = [((o - r) / scale).ravel() ** 2 for o, r in zip(out, ref, strict=True)]
        mse = float(np.mean(np.concatenate(squared)))
        result.outputs.append(OutputParity(name, err, _psnr(mse, 1.0), scale))
    return result
