"""Static int8 ONNX for ONNX Runtime's CPU provider: QDQ, per-channel weights, calibrated on faces.

The fp32 export is quantised with ``onnxruntime.quantization.quantize_static``:

* **QDQ format** (``QuantizeLinear``/``DequantizeLinear`` pairs around float ops), the format ORT's
  graph optimiser fuses into integer kernels (``DQ → Conv → Q`` becomes ``QLinearConv``) at session
  creation; the runtime reads back which convs were fused (``mfsbench.device.runtimes.onnxruntime``),
  so a conv left as ``DQ → Conv`` counts as fp32, never as int8.
* **Per-channel weights** (one scale per output channel): the student's depthwise and 1×1 convs have
  per-channel ranges far apart, and a per-tensor scale costs them most of their 8 bits.
* **uint8 activations, int8 weights (U8S8)**: on x86 MLAS's int8 convolutions take unsigned
  activations and signed weights (``vpmaddubsw``, and ``vpdpbusd`` with VNNI); with int8 activations
  (S8S8) ORT 1.32 left 5 of the student's 32 convs as ``DQ → Conv`` in fp32 (measured, 224² frame
  stage). Asymmetric activations (a zero point) fit the one-sided ranges after LeakyReLU/sigmoid.
* **reduce_range on x86 CPUs without VNNI**: there ``vpmaddubsw`` adds two u8×s8 products into an
  int16 that saturates; 7-bit weights keep the pair sum in range. On the AVX2-only EPYC here it raised
  the held-out mask PSNR of the 224² student from 49.6 to 60.5 dB (face 56.1 → 58.7 dB). CPUs with
  VNNI/AMX (and Arm) accumulate in int32 directly and keep 8-bit weights. The choice is made for the
  CPU that exports, which is the one that times the file in a sweep, and is written in ``details``.
* **MinMax calibration** on the caller's real aligned face crops (``ExportJob.calibration``).
* Before quantising, ``quant_pre_process`` (ONNX shape inference + ORT's basic optimisation, which
  folds the BatchNorms into their convs) so every conv has a known shape and no float BN is left
  between a conv and its quantised output. No node is excluded: on the student frame stage the
  output heads stay above 55 dB held out with everything quantised.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.export.base import calibration_feeds
from mfsbench.optional import require

#: x86 features that give int8 dot products with int32 accumulation (no int16 saturation)
_X86_INT8_DOT = ("avx512_vnni", "avx_vnni", "amx_int8")


def reduce_range_for(isa: Collection[str] | None) -> tuple[bool, str]:
    """``(reduce_range, why)`` for a CPU with features ``isa`` (None: unknown → the safe 7 bits)."""
    if isa is None:
        return True, ("CPU features unknown: 7-bit weights avoid int16 saturation on x86 "
                      "without VNNI")
    if "avx2" in isa and not any(f in isa for f in _X86_INT8_DOT):
        return True, ("x86 without VNNI: u8*s8 pairs are summed in int16 (vpmaddubsw), "
                      "7-bit weights avoid saturation")
    return False, "int8 dot products accumulate in int32 on this CPU: full 8-bit weights"


def quantize_static_qdq(
    fp32_path: Path,
    path: Path,
    calibration: Sequence[Sequence[Any]],
    input_names: Sequence[str],
    *,
    isa: Collection[str] | None = None,
) -> dict[str, Any]:
    """Write the static int8 QDQ model of ``fp32_path`` to ``path``; returns what was done.

    Args:
        calibration: one tuple per sample, one array per stage input ((C,H,W) or (1,C,H,W), float in
            the range the stage takes), real aligned face crops.
        isa: the CPU features that decide ``reduce_range`` (:func:`reduce_range_for`); default: this
            machine's (:func:`mfsbench.records.cpu_isa`).

    Returns:
        The ``ExportedArtifact.details`` of the file (plain JSON values).
    """
    ort = require("onnxruntime", "onnxruntime", "ONNX int8 export (onnxruntime.quantization)")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mfsbench.records import cpu_isa

    feeds = calibration_feeds(calibration, input_names)
    if isa is None:
        isa = cpu_isa()
    reduce_range, why = reduce_range_for(isa)

    class _Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self._samples: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._samples, None)

    with tempfile.TemporaryDirectory(prefix="mfsbench-onnx-int8-") as tmp:
        prepared = Path(tmp) / "preprocessed.onnx"
        # symbolic shape inference is for transformer-style dynamic dims; these stages are static
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(
            str(prepared), str(path), _Faces(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=[],
        )
    return {
        "quantizer": f"onnxruntime.quantization {ort.__version__} quantize_static",
        "preprocess": "quant_pre_process (ONNX shape inference, ORT basic optimisation: BN folded)",
        "format": "QDQ",
        "per_channel": True,
        "activation_type": "uint8 (asymmetric)",
        "weight_type": "int8 (symmetric)",
        "reduce_range": reduce_range,
        "reduce_range_reason": why,
        "calibration_method": "MinMax",
        "calibration_samples": len(feeds),
        "nodes_excluded": [],
    }


def write_int8(
    path: Path, calibration: Sequence[Sequence[Any]] | None, input_names: Sequence[str]
) -> dict[str, Any]:
    """Replace the fp32 export at ``path`` by its static int8 QDQ model; returns the details.

    The hook :class:`mfsbench.export.onnx.OnnxExporter` calls for ``precision="int8"`` after the fp32
    file is written (the fp32 graph is kept only in a temporary directory).
    """
    if not calibration:
        raise BadInputError("int8 export needs calibration inputs (real aligned face crops); none given")
    with tempfile.TemporaryDirectory(prefix="mfsbench-onnx-fp32-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        shutil.move(str(path), fp32)
        return quantize_static_qdq(fp32, path, calibration, input_names)
