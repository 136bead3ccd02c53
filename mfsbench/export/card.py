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

* ``tflite`` × ``fp32``: onnx2tf + TensorFlow's converter (:mod:`mfsbench.export.card_tflite`, the
  optional ``cards-tflite`` extra; channels-last I/O, recorded in ``details["layout"]``);
* ``tflite`` × ``fp16`` / ``int8``: ai-edge-quantizer on that fp32 file, as the torch path
  (:mod:`mfsbench.export.tflite`), int8 calibrated on the caller's face crops in the file's layout.

OpenVINO's bf16 is a request to the plugin on the fp32 file, not a file. Derivatives are written to a
per-user cache (:func:`artifact_cache_dir`), keyed by the card file's sha256, the format, the
precision and what else decides the bytes (calibration inputs, tool versions, fixed input shapes),
and never into the repository or the card's folder: a derivative of a non-commercial model is still
that model. Without the ``cards-tflite`` extra, :func:`no_tflite_reason` says why a card meets no LiteRT.
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

#: what a card needs to meet LiteRT or a TFLite ``benchmark_model`` (the phone runner names it)
NO_TFLITE = ("a card's ONNX file reaches TFLite only through ONNX→TFLite conversion (onnx2tf with "
             "TensorFlow, the cards-tflite extra: pip install 'mfsbench[cards-tflite]')")

#: (format, precision) pairs a card's file can be turned into, beside the file itself
DERIVATIVES = (("onnx", "int8"), ("openvino", "fp16"), ("openvino", "int8"), ("tflite", "fp32"),
               ("tflite", "fp16"), ("tflite", "int8"))


def no_tflite_reason() -> str | None:
    """Why a card cannot become a TFLite file here (names the extra and what is missing), or None."""
    from mfsbench.export.card_tflite import missing_reason

    return missing_reason()


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


def _versions(fmt: str, precision: str = "fp32") -> str:
    from importlib import metadata

    from mfsbench.export.card_tflite import CONVERTER_PACKAGES

    packages: tuple[str, ...] = {"onnx": ("onnxruntime",), "openvino": ("openvino", "nncf")}.get(
        fmt, CONVERTER_PACKAGES + (("ai-edge-quantizer",) if precision != "fp32" else ()))
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
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> ExportedArtifact:
    """The artefact of ``source`` (a card's ONNX file) for ``fmt`` × ``precision``.

    fp32 in ONNX or OpenVINO is ``source`` itself (OpenVINO reads ONNX). A derivative is made once and
    then found again in the cache by its key; its ``details`` say what made it and that it was reused.
    TFLite needs ``input_shapes`` (the card's static input shapes, in the graph's input order); its
    artefact's names are the file's own, in the LiteRT runtime's order (``details["layout"]``).

    Raises:
        BadInputError: a pair no card can be turned into, or int8 without calibration.
        MissingDependencyError: TFLite without the ``cards-tflite`` extra.
    """
    names = (tuple(input_names), tuple(output_names))
    if precision == "fp32" and fmt in ("onnx", "openvino"):
        return ExportedArtifact(source, "onnx", "fp32", source_sha256, *names, details={
            "source": "the card's ONNX graph, run as it is (its own file, or the graph converted from "
                      "its TorchScript archive)", "weights": "fp32",
            "compute": "f32", "read_by": "onnxruntime" if fmt == "onnx" else "openvino read_model (ONNX)"})
    if (fmt, precision) not in DERIVATIVES:
        raise BadInputError(f"a card's ONNX file cannot be turned into {fmt} {precision}; "
                            f"derivatives: {', '.join(f'{f} {p}' for f, p in DERIVATIVES)}")
    if fmt == "tflite":
        return _tflite_artifact(source, source_sha256, precision, input_names=input_names,
                                input_shapes=input_shapes, calibration=calibration, cache_dir=cache_dir)
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


def _tflite_artifact(source: Path, source_sha256: str, precision: str, *, input_names: Sequence[str],
                     input_shapes: dict[str, tuple[int, ...]] | None,
                     calibration: Sequence[Sequence[Any]] | None, cache_dir: Path | None) -> ExportedArtifact:
    """fp32 by onnx2tf (:func:`mfsbench.export.card_tflite.convert_fp32`), fp16/int8 from that fp32
    file by ai-edge-quantizer; each cached under its own key (see :func:`card_artifact`)."""
    from mfsbench.export import card_tflite

    card_tflite.require_converter()
    if not input_shapes:
        raise BadInputError("a card's TFLite conversion needs its static input shapes (io.target/io.source)")
    shapes = {name: tuple(int(d) for d in input_shapes[name]) for name in input_names}
    feeds = calibration_feeds(calibration, input_names) if precision == "int8" else []
    key_parts = [source_sha256, "tflite", precision, _versions("tflite", precision), json.dumps(shapes)]
    if feeds:
        key_parts.append(_calibration_digest(feeds))
    key = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()[:16]
    folder = (cache_dir or artifact_cache_dir()) / "cards" / source_sha256[:16]
    stem = f"tflite_{precision}_{key}"
    path, sidecar = folder / f"{stem}.tflite", folder / f"{stem}.json"

    def artefact(details: dict[str, Any]) -> ExportedArtifact:
        layout = details["layout"]
        return ExportedArtifact(path, "tflite", precision, sha256_file(path),
                                tuple(i["file"] for i in layout["inputs"]),
                                tuple(o["file"] for o in layout["outputs"]), details=details)

    if path.is_file() and sidecar.is_file():
        details = json.loads(sidecar.read_text(encoding="utf-8"))
        details["cache"] = f"reused from {folder} (key {key})"
        return artefact(details)
    folder.mkdir(parents=True, exist_ok=True)
    details: dict[str, Any] = {"derived_from": f"card file sha256 {source_sha256}", "cache_key": key}
    if precision == "fp32":
        details.update(card_tflite.convert_fp32(source, path, shapes))
        details.update({"weights": "fp32", "compute": "f32", "io": "float32"})
    else:
        fp32 = _tflite_artifact(source, source_sha256, "fp32", input_names=input_names, input_shapes=shapes,
                                calibration=None, cache_dir=cache_dir)
        from mfsbench.export.tflite import quantize_fp16, quantize_int8

        details.update({"converter": fp32.details.get("converter"), "from_fp32_tflite": fp32.sha256,
                        **{k: fp32.details[k] for k in card_tflite.CONVERTER_PACKAGES if k in fp32.details}})
        tmp = path.with_name(path.stem + ".partial.tflite")
        if precision == "fp16":
            details.update(quantize_fp16(fp32.path, tmp))
        else:
            layout = fp32.details["layout"]
            samples = [card_tflite.inputs_in_file_order(s, input_names, layout) for s in calibration or ()]
            details.update(quantize_int8(fp32.path, tmp, samples, fp32.input_names))
            details["calibration_layout"] = {i["file"]: i["layout"] for i in layout["inputs"]}
        tmp.replace(path)
    details["layout"] = card_tflite.io_layout(path, shapes, _onnx_output_shapes(source, shapes))
    sidecar.write_text(json.dumps(details, default=str), encoding="utf-8")
    details["cache"] = f"written to {folder} (key {key})"
    return artefact(details)


def _onnx_output_shapes(source: Path, shapes: dict[str, tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The ONNX graph's output shapes at the static input shapes, from one ONNX Runtime run on zeros
    (declared output shapes may be dynamic)."""
    from mfsbench.optional import require

    ort = require("onnxruntime", "onnxruntime", "reading a card graph's output shapes")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    feeds = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    return [tuple(np.asarray(o).shape) for o in session.run(None, feeds)]
