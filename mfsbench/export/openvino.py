"""ONNX → OpenVINO IR (``.xml`` + ``.bin``), fp32 or fp16 weights.

The IR is converted from the ONNX file rather than traced from torch a second time, so the ONNX and
OpenVINO artifacts come from one graph. ``save_model`` compresses weights to fp16 *by default*; fp32
is written with ``compress_to_fp16=False`` explicitly.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.export.base import ExportedArtifact, Exporter, default_input_names, require
from mfsbench.export.onnx import export_onnx, output_count
from mfsbench.export.stages import export_ready


class OpenVinoExporter(Exporter):
    name = "openvino"
    precisions = ("fp32", "fp16")

    def export(
        self,
        module: nn.Module,
        example_inputs: Sequence[Tensor],
        out_dir: Path,
        precision: str,
        *,
        input_names: Sequence[str] | None = None,
        calibration: Sequence[Sequence[Any]] | None = None,
        stem: str = "model",
    ) -> ExportedArtifact:
        self.check_precision(precision)
        module = export_ready(module)
        ov = require("openvino", "openvino", "OpenVINO export")
        inputs = default_input_names(len(example_inputs), input_names)
        outputs = tuple(f"output_{i}" for i in range(output_count(module, example_inputs)))
        out_dir = Path(out_dir)
        with tempfile.TemporaryDirectory(prefix="mfsbench-ov-") as tmp:
            onnx_path = Path(tmp) / f"{stem}.onnx"
            export_onnx(module, example_inputs, onnx_path, inputs, outputs)
            model = ov.convert_model(str(onnx_path))
        out_dir.mkdir(parents=True, exist_ok=True)
        xml = out_dir / f"{stem}.xml"
        ov.save_model(model, str(xml), compress_to_fp16=precision == "fp16")
        # the weights live in the .bin; the artifact hash is the .xml's, the CLI records both
        return ExportedArtifact(xml, self.name, precision, sha256_file(xml), inputs, outputs)
