"""ONNX → OpenVINO IR (``.xml`` + ``.bin``), fp32 or fp16 weights.

The IR is converted from the ONNX file rather than traced from torch a second time, so the ONNX and
OpenVINO artifacts come from one graph. ``save_model`` compresses weights to fp16 *by default*; fp32
is written with ``compress_to_fp16=False`` explicitly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.export.base import ExportedArtifact, Exporter, ExportJob
from mfsbench.export.onnx import export_onnx, output_count
from mfsbench.optional import require


class OpenVinoExporter(Exporter):
    name = "openvino"
    precisions = ("fp32", "fp16")

    def write(self, job: ExportJob) -> ExportedArtifact:
        ov = require("openvino", "openvino", "OpenVINO export")
        outputs = tuple(f"output_{i}" for i in range(output_count(job.module, job.example_inputs)))
        with tempfile.TemporaryDirectory(prefix="mfsbench-ov-") as tmp:
            onnx_path = Path(tmp) / f"{job.stem}.onnx"
            export_onnx(job.module, job.example_inputs, onnx_path, job.input_names, outputs)
            model = ov.convert_model(str(onnx_path))
        job.out_dir.mkdir(parents=True, exist_ok=True)
        xml = job.out_dir / f"{job.stem}.xml"
        ov.save_model(model, str(xml), compress_to_fp16=job.precision == "fp16")
        # the weights live in the .bin; the artifact hash is the .xml's, the CLI records both
        return ExportedArtifact(xml, self.name, job.precision, sha256_file(xml), job.input_names, outputs)
