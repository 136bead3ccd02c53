"""torch → TFLite with litert-torch (no TensorFlow), then fp16 / int8 with ai-edge-quantizer.

Why this route: litert-torch converts NCHW torch modules directly and needs no 2 GB TensorFlow;
onnx2tf would need TF and downloads a calibration file at run time. litert-torch's own PT2E int8
fails on MobileFaceSwap's depthwise U-Net ("'tfl.pad' op quantization parameters violate the same
scale constraint"), so both reduced precisions are produced *from the fp32 .tflite* by
ai-edge-quantizer:

* fp16 = weight-only float casting of conv/FC weights: the interpreter dequantizes them to f32 and
  computes in f32 (``details`` ``{"weights": "fp16", "compute": "f32"}``; the device axis calls the
  cell ``fp16-weights``);
* int8 = static int8 weights (per channel) and activations (asymmetric, MinMax), calibrated on
  caller-supplied inputs (real aligned face crops; random noise would calibrate activation ranges
  that faces never produce).

I/O is float32 in every file. ``static_wi8_ai8`` alone would quantize the graph inputs and outputs
too (int8 I/O), leaving the (de)quantization to the caller: the LiteRT adapter then did it in numpy
inside the timed run (about 0.25 ms/run on the student, 3 % of its int8 p50, measured for the
audit). Here the recipe's virtual ``INPUT``/``OUTPUT`` ops are set to ``NO_QUANTIZE``, so the
quantizer puts a ``QUANTIZE`` after the float input and a ``DEQUANTIZE`` before each float output
*inside* the graph, run by the interpreter (XNNPACK) like any other op: what an app fed with float
frames runs. ``details["io"]`` says so; ``float_io=False`` still writes the int8-I/O file (for
comparison; the adapter then (de)quantizes in numpy and records ``io_dtypes: int8``).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.device.runtimes.litert import SIGNATURE, signature_position
from mfsbench.errors import MfsbenchError
from mfsbench.export.base import ExportedArtifact, Exporter, ExportJob, calibration_feeds
from mfsbench.optional import require

#: ops whose weights ai-edge-quantizer's float casting can store as fp16
_FP16_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "CONV_2D_TRANSPOSE")


def signature_names(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Input and output names of the default signature, in litert-torch's positional order."""
    litert = require("ai_edge_litert.interpreter", "ai-edge-litert", "TFLite inspection")
    signatures = litert.Interpreter(model_path=str(path)).get_signature_list()
    if SIGNATURE not in signatures:
        raise MfsbenchError(f"{path} has no {SIGNATURE!r} signature (has {sorted(signatures)})")
    sig = signatures[SIGNATURE]
    return (tuple(sorted(sig["inputs"], key=signature_position)),
            tuple(sorted(sig["outputs"], key=signature_position)))


def convert_fp32(module: nn.Module, example_inputs: Sequence[Tensor], path: Path) -> None:
    litert_torch = require("litert_torch", "litert-torch", "TFLite export")
    path.parent.mkdir(parents=True, exist_ok=True)
    # litert-torch prints progress on stdout; keep stdout for the command's own result line
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        edge = litert_torch.convert(module.eval(), tuple(example_inputs))
        edge.export(str(path))


def quantize_fp16(fp32_path: Path, path: Path) -> dict[str, Any]:
    """Weight-only fp16 (float casting): half the file, activations and compute stay f32."""
    aeq = require("ai_edge_quantizer", "ai-edge-quantizer", "TFLite fp16 export")
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    del aeq
    qt = quantizer.Quantizer(str(fp32_path))
    for op in _FP16_OPS:
        qt.add_weight_only_config(
            regex=".*",
            operation_name=getattr(qtyping.TFLOperationName, op),
            num_bits=16,
            algorithm_key=AlgorithmName.FLOAT_CASTING,
        )
    qt.quantize().export_model(str(path), overwrite=True)
    return {"quantizer": f"ai-edge-quantizer {metadata.version('ai-edge-quantizer')} float casting",
            "weights": "fp16", "compute": "f32", "ops": list(_FP16_OPS), "io": "float32"}


def quantize_int8(
    fp32_path: Path, path: Path, calibration: Sequence[Sequence[Any]], input_names: Sequence[str],
    *, float_io: bool = True,
) -> dict[str, Any]:
    """Static int8 weights and activations (``static_wi8_ai8``), calibrated on ``calibration``.

    Args:
        calibration: one tuple per sample, one array per stage input ((C,H,W) or (1,C,H,W), float
            in the range the stage takes, e.g. RGB in [0, 1]).
        float_io: keep the graph's inputs and outputs float32, with the (de)quantize ops inside the
            graph (see the module docstring); False writes int8 inputs and outputs.

    Returns:
        What was done, for ``ExportedArtifact.details``.
    """
    require("ai_edge_quantizer", "ai-edge-quantizer", "TFLite int8 export")
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    samples = calibration_feeds(calibration, input_names)
    qt = quantizer.Quantizer(str(fp32_path))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    if float_io:  # the graph's own input/output tensors stay float: (de)quantize ops inside the graph
        for boundary in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            qt.update_quantization_recipe(regex=".*", operation_name=boundary,
                                          algorithm_key=AlgorithmName.NO_QUANTIZE)
    # one thread: more makes the quantizer fork a process while JAX threads run (deadlock risk)
    result = qt.calibrate({SIGNATURE: samples}, num_threads=1)
    qt.quantize(result).export_model(str(path), overwrite=True)
    io = _io_dtypes(path)
    if float_io and io != {"float32"}:
        raise MfsbenchError(f"ai-edge-quantizer wrote {sorted(io)} I/O for {path} although asked for float32")
    return {"quantizer": f"ai-edge-quantizer {metadata.version('ai-edge-quantizer')} static_wi8_ai8",
            "weights": "int8 per-channel (symmetric)", "activations": "int8 (asymmetric)",
            "calibration_method": "MinMax (MIN_MAX_UNIFORM_QUANT)", "calibration_samples": len(samples),
            "io": ("float32 (QUANTIZE/DEQUANTIZE inside the graph)" if float_io
                   else "int8 (quantized by the caller)"),
            "nodes_excluded": []}


def _io_dtypes(path: Path) -> set[str]:
    """The dtypes of the file's signature inputs and outputs."""
    litert = require("ai_edge_litert.interpreter", "ai-edge-litert", "TFLite inspection")
    runner = litert.Interpreter(model_path=str(path)).get_signature_runner(SIGNATURE)
    details = [*runner.get_input_details().values(), *runner.get_output_details().values()]
    return {np.dtype(d["dtype"]).name for d in details}


class TfliteExporter(Exporter):
    name = "tflite"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, float_io: bool = True) -> None:
        #: int8 files keep float32 inputs/outputs (see the module docstring)
        self.float_io = float_io

    def write(self, job: ExportJob) -> ExportedArtifact:
        # the file's own names are litert-torch's (args_0, output_0), read back from its signature
        path = job.out_dir / f"{job.stem}.tflite"
        details: dict[str, Any] = {"converter": f"litert-torch {metadata.version('litert-torch')}"}
        if job.precision == "fp32":
            convert_fp32(job.module, job.example_inputs, path)
            details.update({"weights": "fp32", "compute": "f32", "io": "float32"})
        else:
            with tempfile.TemporaryDirectory(prefix="mfsbench-tflite-") as tmp:
                fp32 = Path(tmp) / "fp32.tflite"
                convert_fp32(job.module, job.example_inputs, fp32)
                job.out_dir.mkdir(parents=True, exist_ok=True)
                if job.precision == "fp16":
                    details.update(quantize_fp16(fp32, path))
                else:
                    assert job.calibration is not None  # Exporter.export checked it
                    details.update(quantize_int8(fp32, path, job.calibration, signature_names(fp32)[0],
                                                 float_io=self.float_io))
        inputs, outputs = signature_names(path)
        return ExportedArtifact(path, self.name, job.precision, sha256_file(path), inputs, outputs,
                                details=details)
