"""A model card's ONNX file as the device axis's artefacts: the file itself, and derivatives in a cache.

Why no export step: a card's weights *are* its ONNX file (the user's, checked by sha256 in
:mod:`mfsbench.cards.load`). ONNX Runtime and OpenVINO read ONNX directly, so the fp32 artefact of
both runtimes is that very file, and every record names it by its sha256. Reduced precisions are
derived from it:

* ``onnx`` × ``int8``: static QDQ with per-channel weights
  (:func:`mfsbench.export.onnx_int8.quantize_static_qdq`), calibrated on the caller's real face crops;
* ``openvino`` × ``fp16``: the IR with fp16 weights (``compress_to_fp16``; f32 compute, the
  ``fp16-weights`` cell);
* ``openvino`` × ``int8``: NNCF post-training int8 of the IR (:func:`mfsbench.export.openvino.quantize_int8`).

OpenVINO's bf16 is a request to the plugin on the fp32 file, not a file. Derivatives are written to a
per-user cache (:func:`artifact_cache_dir`), keyed by the card file's sha256, the format, the
precision and what else decides the bytes (calibration inputs, tool versions), and never into the
repository or the card's folder: a derivative of a non-commercial model is still that model.
A TFLite file would need ONNX→TFLite conversion (onnx2tf with TensorFlow), which this suite does not
carry: :data:`NO_TFLITE` says so wherever a card meets LiteRT.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.errors import BadInputError
from mfsbench.export.base import ExportedArtifact, calibration_feeds

#: where derivatives of users' files go (default ``~/.cache/mfsbench/artifacts``)
CACHE_ENV = "MFSBENCH_ARTIFACT_CACHE"

#: why a card has no LiteRT cell (and no TFLite phone run)
NO_TFLITE = ("a card's ONNX file would need ONNX→TFLite conversion (onnx2tf with TensorFlow), which "
             "mfsbench does not carry: its TFLite exporter converts torch modules with litert-torch")

#: (format, precision) pairs a card's file can be turned into, beside the file itself
DERIVATIVES = (("onnx", "int8"), ("openvino", "fp16"), ("openvino", "int8"))


def artifact_cache_dir() -> Path:
    """The per-user cache of derived artefacts: ``$MFSBENCH_ARTIFACT_CACHE``, else
    ``$XDG_CACHE_HOME/mfsbench/artifacts``, else ``~/.cache/mfsbench/artifacts``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mfsbench" / "artifacts"


def _calibration_digest(feeds: Sequence[dict[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(feed[name], np.float32).tobytes())
    return digest.hexdigest()


def _versions(fmt: str) -> str:
    from importlib import metadata

    packages = ("onnxruntime",) if fmt == "onnx" else ("openvino", "nncf")
    found = []
    for package in packages:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} none")
    return ", ".join(found)


def card_artifact(
    source: Path,
    source_sha256: str,
    fmt: str,
    precision: str,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    calibration: Sequence[Sequence[Any]] | None = None,
    cache_dir: Path | None = None,
) -> ExportedArtifact:
    """The artefact of ``source`` (a card's ONNX file) for ``fmt`` × ``precision``.

    fp32 in either format is ``source`` itself (OpenVINO reads ONNX). A derivative is made once and
    then found again in the cache by its key; its ``details`` say what made it and that it was reused.

    Raises:
        BadInputError: a pair no card can be turned into (e.g. TFLite), or int8 without calibration.
    """
    names = (tuple(input_names), tuple(output_names))
    if precision == "fp32" and fmt in ("onnx", "openvino"):
        return ExportedArtifact(source, "onnx", "fp32", source_sha256, *names, details={
            "source": "the card's own ONNX file, run as it is (no export step)", "weights": "fp32",
            "compute": "f32", "read_by": "onnxruntime" if fmt == "onnx" else "openvino read_model (ONNX)"})
    if fmt == "tflite":
        raise BadInputError(NO_TFLITE)
    if (fmt, precision) not in DERIVATIVES:
        raise BadInputError(f"a card's ONNX file cannot be turned into {fmt} {precision}; "
                            f"derivatives: {', '.join(f'{f} {p}' for f, p in DERIVATIVES)}")
    feeds = calibration_feeds(calibration, input_names) if precision == "int8" else []
    key_parts = [source_sha256, fmt, precision, _versions(fmt)]
    if feeds:
        from mfsbench.export.onnx_int8 import reduce_range_for
        from mfsbench.records import cpu_isa

        reduce_range = reduce_range_for(cpu_isa())[0] if fmt == "onnx" else ""
        key_parts += [_calibration_digest(feeds), str(reduce_range)]
    key = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()[:16]
    folder = (cache_dir or artifact_cache_dir()) / "cards" / source_sha256[:16]
    stem = f"{fmt}_{precision}_{key}"
    path = folder / (f"{stem}.onnx" if fmt == "onnx" else f"{stem}.xml")
    sidecar = folder / f"{stem}.json"
    if path.is_file() and sidecar.is_file():
        details = json.loads(sidecar.read_text(encoding="utf-8"))
        details["cache"] = f"reused from {folder} (key {key})"
        return ExportedArtifact(path, fmt, precision, sha256_file(path), *names, details=details)
    folder.mkdir(parents=True, exist_ok=True)
    details = {"derived_from": f"card file sha256 {source_sha256}", "cache_key": key,
               **(_write_onnx_int8(source, path, calibration, input_names) if fmt == "onnx"
                  else _write_openvino(source, path, precision, feeds))}
    sidecar.write_text(json.dumps(details, default=str), encoding="utf-8")
    details["cache"] = f"written to {folder} (key {key})"
    return ExportedArtifact(path, fmt, precision, sha256_file(path), *names, details=details)


def _write_onnx_int8(source: Path, path: Path, calibration: Sequence[Sequence[Any]] | None,
                     input_names: Sequence[str]) -> dict[str, Any]:
    from mfsbench.export.onnx_int8 import quantize_static_qdq

    tmp = path.with_name(path.stem + ".partial.onnx")
    details = quantize_static_qdq(source, tmp, calibration or (), input_names)
    tmp.replace(path)  # a killed run leaves no half-written file under the final name
    return details


def _write_openvino(source: Path, xml: Path, precision: str,
                    feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    from mfsbench.export.openvino import quantize_int8
    from mfsbench.optional import require

    ov = require("openvino", "openvino", "OpenVINO conversion of a card's ONNX file")
    model = ov.convert_model(str(source))
    details: dict[str, Any] = {"converted_from": "the card's ONNX file", "openvino": ov.__version__}
    if precision == "int8":
        model, quantized = quantize_int8(model, feeds)
        details.update(quantized)
        if quantized["int8_weight_ops"] == 0:
            raise BadInputError("NNCF inserted no weight quantisers into the card's graph: its int8 IR "
                                "would be fp32")
    else:
        details.update({"weights": "fp16", "compute": "f32",
                        "how": "openvino save_model compress_to_fp16=True (weights only)"})
    tmp = xml.with_name(xml.stem + ".partial.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=precision == "fp16")
    tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    tmp.replace(xml)
    return details
