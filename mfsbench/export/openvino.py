"""ONNX → OpenVINO IR (``.xml`` + ``.bin``): fp32, fp16 weights, or int8 quantised with NNCF.

The IR is converted from the ONNX file rather than traced from torch a second time, so the ONNX and
OpenVINO artifacts come from one graph. ``save_model`` compresses weights to fp16 *by default*; fp32
is written with ``compress_to_fp16=False`` explicitly, and the fp16 IR is exactly that compression:
fp16 weights that the CPU plugin decompresses and computes in f32 (the ``fp16-weights`` cell, never
``fp16`` arithmetic).

int8 is NNCF post-training quantisation (``nncf.quantize``) of the fp32 IR, calibrated on the job's
real aligned face crops (every crop given, ``subset_size`` = their number):

* ``preset=MIXED``: symmetric int8 weights (per output channel), *asymmetric* int8 activations.
  NNCF's default for a non-transformer is ``PERFORMANCE`` (symmetric activations too); OpenVINO's
  quantisation guide recommends ``MIXED`` for models with non-ReLU, asymmetric activations such as
  PReLU, and the student's frame stage has 16 PReLUs. Measured on ``mobilefaceswap_224`` (seeded
  weights, 10 calibration crops, 8 held-out crops, openvino 2026.4.1 / nncf 3.4.0, AVX2 CPU):
  ``MIXED`` 49.8 dB worst-output PSNR against torch, ``PERFORMANCE`` 49.0 dB, at the same latency
  within noise (interleaved p50 26.7 vs 27.2 ms, 2 threads, a shared machine).
* ``target_device=CPU``: the CPU plugin's hardware config (which ops get quantisers, per-channel
  weight scales), instead of ``ANY``'s union of devices.
* fast bias correction (NNCF's default) re-centres each quantised layer's output on the
  calibration set; no ignored scope: every convolution is quantised, and the record says how many
  weighted ops got int8 weights and how many FakeQuantize ops the activations have
  (:func:`int8_summary`).

What was done, read from the quantised model (not from the request), goes into
``ExportedArtifact.details``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.errors import MfsbenchError
from mfsbench.export.base import ExportedArtifact, Exporter, ExportJob, calibration_feeds
from mfsbench.export.onnx import export_onnx, output_count
from mfsbench.optional import require

#: the NNCF preset used for int8 (see the module docstring)
INT8_PRESET = "mixed"


#: IR op types whose input 1 is a weight tensor (what int8 quantises besides activations)
_WEIGHTED = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData",
             "MatMul")
_PASS_THROUGH = ("Reshape", "Unsqueeze", "Squeeze", "Transpose")


def _elements(shape: Any) -> int:
    """Number of elements of a static partial shape; 0 for a dynamic one."""
    return int(np.prod([d.get_length() for d in shape])) if shape.is_static else 0


def _int8_weight(node: Any) -> tuple[bool, bool]:
    """``(quantised, per_channel)`` for a weight input: NNCF's OpenVINO backend stores it as an i8/u8
    Constant → Convert → (Subtract zero point) → Multiply by a scale; the scale has one value per
    output channel when it has more than one element."""
    while node.get_type_name() in _PASS_THROUGH:
        node = node.input_value(0).get_node()
    if node.get_type_name() != "Multiply":
        return False, False
    quantised = per_channel = False
    for port in range(2):
        source = node.input_value(port).get_node()
        while source.get_type_name() in ("Convert", "Subtract", *_PASS_THROUGH):
            source = source.input_value(0).get_node()
        if source.get_type_name() != "Constant":
            continue
        if str(source.get_output_element_type(0).get_type_name()) in ("i8", "u8"):
            quantised = True
        else:
            per_channel = per_channel or _elements(source.get_output_partial_shape(0)) > 1
    return quantised, quantised and per_channel


def int8_summary(model: Any) -> dict[str, Any]:
    """What a quantised model holds, read from its graph: weighted ops with int8 weights (and how many
    of those have per-channel scales; a one-channel conv has one scale), the FakeQuantize ops NNCF
    put on activations (how many with a single range) and their levels."""
    weighted = int8_weights = per_channel = activations = per_tensor = 0
    levels: set[int] = set()
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in _WEIGHTED and op.get_input_size() > 1:
            weighted += 1
            quantised, channelwise = _int8_weight(op.input_value(1).get_node())
            int8_weights += int(quantised)
            per_channel += int(channelwise)
        elif kind == "FakeQuantize":
            activations += 1
            levels.add(int(op.get_levels()))
            per_tensor += int(_elements(op.input_value(1).get_partial_shape()) == 1)
    return {"weighted_ops": weighted, "int8_weight_ops": int8_weights,
            "int8_weights_per_channel": per_channel, "fake_quantize_ops": activations,
            "fake_quantize_per_tensor": per_tensor, "fake_quantize_levels": sorted(levels)}


def quantize_int8(ov_model: Any, feeds: list[dict[str, np.ndarray]]) -> tuple[Any, dict[str, Any]]:
    """``(quantised model, details)``: NNCF post-training int8 of an fp32 OpenVINO model."""
    nncf = require("nncf", "nncf", "OpenVINO int8 export (NNCF post-training quantisation)")
    from nncf.common.logging.logger import set_log_level

    set_log_level(logging.WARNING)
    # NNCF draws progress bars on stdout; the CLI's stdout is for its own output
    with contextlib.redirect_stdout(io.StringIO()):
        quantized = nncf.quantize(
            ov_model,
            nncf.Dataset(feeds),
            preset=nncf.QuantizationPreset(INT8_PRESET),
            target_device=nncf.TargetDevice.CPU,
            subset_size=len(feeds),
            fast_bias_correction=True,
        )
    details = {
        "quantizer": f"nncf {nncf.__version__} quantize (post-training: min-max ranges, "
                     "fast bias correction)",
        "preset": INT8_PRESET,
        "target_device": "CPU",
        "scheme": "int8: symmetric weights, asymmetric activations (the preset)",
        "subset_size": len(feeds),
        "calibration_samples": len(feeds),
        "ignored_scope": None,
        **int8_summary(quantized),
    }
    return quantized, details


class OpenVinoExporter(Exporter):
    name = "openvino"
    precisions = ("fp32", "fp16", "int8")

    def write(self, job: ExportJob) -> ExportedArtifact:
        ov = require("openvino", "openvino", "OpenVINO export")
        outputs = tuple(f"output_{i}" for i in range(output_count(job.module, job.example_inputs)))
        feeds = calibration_feeds(job.calibration or (), job.input_names) if job.precision == "int8" else []
        with tempfile.TemporaryDirectory(prefix="mfsbench-ov-") as tmp:
            onnx_path = Path(tmp) / f"{job.stem}.onnx"
            onnx_details = export_onnx(job.module, job.example_inputs, onnx_path, job.input_names, outputs)
            model = ov.convert_model(str(onnx_path))
        # the IR is converted from the (parity-checked, possibly optimised) ONNX: say which it was
        details: dict[str, Any] = {"converted_from": "onnx", "openvino": ov.__version__,
                                   "onnx": dict(onnx_details or {})}
        if job.precision == "int8":
            model, quantized = quantize_int8(model, feeds)
            details.update(quantized)
            if quantized["int8_weight_ops"] == 0:
                raise MfsbenchError("NNCF inserted no weight quantisers: the int8 IR would be fp32")
        elif job.precision == "fp16":
            details.update({"weights": "fp16", "compute": "f32",
                            "how": "openvino save_model compress_to_fp16=True (weights only)"})
        else:
            details.update({"weights": "fp32", "compute": "f32"})
        job.out_dir.mkdir(parents=True, exist_ok=True)
        xml = job.out_dir / f"{job.stem}.xml"
        # int8: save_model stores the quantised weights as i8 constants whatever compress_to_fp16 says
        ov.save_model(model, str(xml), compress_to_fp16=job.precision == "fp16")
        # the weights live in the .bin; the artifact hash is the .xml's, the CLI records both
        return ExportedArtifact(xml, self.name, job.precision, sha256_file(xml), job.input_names, outputs,
                                details=details)
