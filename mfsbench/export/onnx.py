"""torch → ONNX with the dynamo exporter, as one self-contained file.

torch 2.13's exporter writes weights to a separate ``.onnx.data`` unless ``external_data=False``;
a single file is what phones and ``onnxruntime_perf_test`` are given, and every zoo stage is under
the 2 GB protobuf limit. The opset actually written is checked after export, because the dynamo
exporter can silently keep a higher one (research notes §3).

Two exporter traps are worked around here, each with a regression test: its graph optimizer drops
tiny epsilons (so it is off, see :func:`export_onnx`), and it writes a bias-free convolution's zero
bias as a computed subgraph that ONNX Runtime never folds (see :func:`explicit_biases`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.errors import MfsbenchError
from mfsbench.export.base import ExportedArtifact, Exporter, ExportJob
from mfsbench.optional import require

OPSET = 20


def output_count(module: nn.Module, example_inputs: Sequence[Tensor]) -> int:
    with torch.no_grad():
        out = module(*example_inputs)
    return len(out) if isinstance(out, (tuple, list)) else 1


def _bias_free_convs(module: nn.Module) -> list[nn.modules.conv._ConvNd]:
    return [m for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd) and m.bias is None]


@contextlib.contextmanager
def explicit_biases(module: nn.Module) -> Iterator[nn.Module]:
    """While open, every bias-free convolution of ``module`` has an all-zero bias (exact: ``x + 0 = x``).

    Why: for ``Conv2d(bias=False)`` torch 2.13's dynamo exporter emits the zero bias as
    ``Shape(W) → Expand → CastLike → Expand`` instead of leaving the input empty. ONNX Runtime does
    not constant-fold that ``Expand``, so the convolution has a *computed* bias and its NCHWc layout
    transformer (blocked convs with fused activations, vectorised upsampling) skips it. On the
    MobileFaceSwap frame stage, where every IDN conv is bias-free, this kept 23 of 32 convs and 4 of
    9 upsamples in plain NCHW with reorders around them: ONNX Runtime took 14.9–24.8 ms per frame
    against 10.6–10.8 ms with explicit zero biases (2 threads, same session options).

    The biases are removed again on exit, error or not, so the caller's module is left as it was
    without a copy of its weights (SimSwap's are hundreds of MB).
    """
    added = _bias_free_convs(module)
    for conv in added:
        conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=conv.weight.dtype), requires_grad=False)
    try:
        yield module
    finally:
        for conv in added:
            conv.bias = None


def export_onnx(
    module: nn.Module,
    example_inputs: Sequence[Tensor],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
) -> None:
    """Write ``path`` as one ONNX file (opset :data:`OPSET`, no external data) and check it."""
    require("onnxscript", "onnxscript", "ONNX export (torch's dynamo exporter)")
    onnx = require("onnx", "onnx", "ONNX export")
    path.parent.mkdir(parents=True, exist_ok=True)
    with explicit_biases(module), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            tuple(example_inputs),
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            opset_version=OPSET,
            dynamo=True,
            # onnxscript's graph optimizer (optimize=True, the default) removes ``Add(x, 1e-8)`` as if
            # it added zero: SimSwap's instance norm ``rsqrt(mean(x²) + 1e-8)`` lost its epsilon and
            # drifted 1.0–1.8e-4 from torch on real faces (5e-4 relative after one residual block).
            # The runtimes fold constants themselves, so nothing is lost by exporting unoptimized.
            optimize=False,
            external_data=False,
            verbose=False,
        )
    stray = path.with_name(path.name + ".data")
    if stray.exists():
        raise MfsbenchError(f"ONNX export wrote external data {stray} although asked for one file")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)


class OnnxExporter(Exporter):
    name = "onnx"
    precisions = ("fp32", "int8")

    def write(self, job: ExportJob) -> ExportedArtifact:
        outputs = tuple(f"output_{i}" for i in range(output_count(job.module, job.example_inputs)))
        path = job.out_dir / f"{job.stem}.onnx"
        export_onnx(job.module, job.example_inputs, path, job.input_names, outputs)
        details: dict = {}
        if job.precision == "int8":  # static QDQ int8 of the fp32 file (mfsbench.export.onnx_int8)
            from mfsbench.export.onnx_int8 import write_int8

            details = {**details, "quantization": write_int8(path, job.calibration, job.input_names)}
        return ExportedArtifact(path, self.name, job.precision, sha256_file(path), job.input_names, outputs,
                                details=details)
