"""Export model *stages* to ONNX, OpenVINO IR and TFLite, each checked against torch for parity.

Backends are optional and imported lazily; see :func:`get_exporter`.
"""

from __future__ import annotations

from mfsbench.export.base import PRECISIONS, ExportedArtifact, Exporter, formats, get_exporter

__all__ = ["PRECISIONS", "ExportedArtifact", "Exporter", "formats", "get_exporter"]
