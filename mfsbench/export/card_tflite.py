"""A model card's ONNX file → fp32 ``.tflite`` with onnx2tf and TensorFlow (the ``cards-tflite`` extra).

Why this route: a card has no torch module, so litert-torch (the zoo's TFLite exporter,
:mod:`mfsbench.export.tflite`) cannot convert it; onnx2tf turns an ONNX graph into a TensorFlow
SavedModel (``specs/deployment_adb_face_assets.md`` §6b), and TensorFlow's own ``TFLiteConverter``
turns that into a ``.tflite`` with a ``serving_default`` signature (§6c; onnx2tf's own fp32 file has
no signature, which ai-edge-quantizer needs). fp16 and int8 are then made from that fp32 file by
ai-edge-quantizer, exactly as the torch path does (:func:`mfsbench.export.tflite.quantize_fp16`,
:func:`~mfsbench.export.tflite.quantize_int8`), so onnx2tf's int8 path, which downloads a
calibration ``.npy`` from GitHub at run time, is never used.

* **The user's file is only read:** onnx2tf rewrites its input ONNX file in place (it names unnamed
  nodes), so it converts a private copy; the card's sha256 still holds afterwards (tested).
* **Nothing downloads:** the conversion runs in a child process whose sockets refuse to connect; a
  converter that tried to fetch anything fails with one line instead. onnx2tf fetches sample images
  for its own dummy inference when every graph input is a 3-channel image (the student's frame stage),
  even at fp32, unless its cwd holds them: the child writes seeded data there (:data:`SAMPLE_NOTE`).
* **Pinned:** onnx2tf 1.28.8 (1.29 pins TF 2.19, numpy 1.26 and onnx 1.19), tensorflow 2.21.0,
  tf-keras 2.21.0; onnxsim is not used (``not_use_onnxsim``), dynamic dimensions are fixed to the
  card's static shapes (``overwrite_input_shape``); only TFLite builtin ops are allowed (no Flex ops,
  which the LiteRT interpreter and ``benchmark_model`` cannot run).
* **Opset ≤ 17:** onnx2tf 1.28.8 turns ``Resize`` with ``align_corners`` into a half-pixel resize at
  opset 18 and later (wrong by up to 0.37 on one upsample, measured); a newer graph's private copy is
  rewritten to opset 17 first, and ``Constant`` nodes (list-valued ones crash onnx2tf) become
  initializers (:func:`_prepare_for_onnx2tf`, checked exact in ONNX Runtime).
* **Layout:** onnx2tf writes 4-D inputs and outputs channels-last (NHWC). :func:`io_layout` reads the
  file's own tensors back from the interpreter (in the order the LiteRT runtime lists them) and
  matches each to the ONNX graph's tensor: ``NCHW→NHWC`` when the file holds the transpose, as is
  when the shapes agree; callers feed and compare in the file's layout and records say which.

The child (``python -m mfsbench.export.card_tflite SRC OUT [name:shape ...]``) also keeps TensorFlow's
start-up (seconds, hundreds of MB, its own thread pools) out of the process that times the cells.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.errors import BadInputError, MfsbenchError, MissingDependencyError

#: the mfsbench extra that installs the converter
EXTRA = "cards-tflite"
#: (module, pip package) the conversion imports
NEEDED = (("onnx2tf", "onnx2tf"), ("tensorflow", "tensorflow"), ("tf_keras", "tf-keras"),
          ("onnx_graphsurgeon", "onnx-graphsurgeon"), ("sng4onnx", "sng4onnx"), ("psutil", "psutil"))
#: packages whose versions decide the converted bytes (recorded and part of the cache key)
CONVERTER_PACKAGES = ("onnx2tf", "tensorflow", "tf-keras")
#: what onnx2tf 1.28.8 looks for in its cwd (``download_test_image_data``) before downloading it
SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
SAMPLE_NOTE = (f"{SAMPLE_FILE} written in onnx2tf's cwd: uniform [0, 1) seed 0 (it would download MS-COCO "
               "samples otherwise); used only by its own fp32 dummy inference, never for calibration")
#: ``Constant`` attributes turned into initializers before conversion
FOLDABLE = ("value", "value_float", "value_floats", "value_int", "value_ints")
#: the newest opset onnx2tf 1.28.8 converts Resize(align_corners) correctly at
MAX_OPSET = 17
#: the longest a conversion may take (a 550 MB graph converts in minutes, not hours)
TIMEOUT_S = 1800.0


def missing_packages() -> list[str]:
    """The converter's pip packages that are not installed (found without importing TensorFlow)."""
    return [package for module, package in NEEDED if importlib.util.find_spec(module) is None]


def missing_reason() -> str | None:
    """Why a card cannot be converted here (one sentence naming the extra), or None when it can."""
    absent = missing_packages()
    if not absent:
        return None
    return (f"a card's ONNX file reaches TFLite through onnx2tf and TensorFlow, which are not installed "
            f"({', '.join(absent)}); install them with: pip install 'mfsbench[{EXTRA}]'")


def require_converter() -> None:
    """Raises:
        MissingDependencyError: the extra is not installed (the message names it)."""
    reason = missing_reason()
    if reason is not None:
        raise MissingDependencyError(reason)


def converter_versions() -> dict[str, str]:
    """``{package: version}`` of :data:`CONVERTER_PACKAGES` ("none" when absent)."""
    found = {}
    for package in CONVERTER_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "none"
    return found


def describe_converter() -> str:
    """The record's converter, e.g. ``onnx2tf 1.28.8 (ONNX → SavedModel) + tensorflow 2.21.0 …``."""
    v = converter_versions()
    return (f"onnx2tf {v['onnx2tf']} (ONNX → SavedModel) + tensorflow {v['tensorflow']} TFLiteConverter "
            f"(SavedModel → .tflite, builtin ops only; tf-keras {v['tf-keras']})")


def convert_fp32(source: Path, out: Path, input_shapes: Mapping[str, Sequence[int]],
                 timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """Convert ``source`` (ONNX) to ``out`` (fp32 ``.tflite``) in a child process; return its details.

    Raises:
        MissingDependencyError: the ``cards-tflite`` extra is not installed.
        MfsbenchError: the converter failed (its last line), or tried to reach the network.
    """
    require_converter()
    shapes = [f"{name}:{','.join(str(int(d)) for d in shape)}" for name, shape in input_shapes.items()]
    command = [sys.executable, "-m", "mfsbench.export.card_tflite", str(source), str(out), *shapes]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        raise MfsbenchError(f"onnx2tf did not convert {source.name} within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        last = next((line for line in reversed(lines) if line.startswith("mfsbench:")), lines[-1] if lines
                    else f"exit code {done.returncode}")
        why = last.removeprefix("mfsbench: ")
        raise MfsbenchError(f"ONNX→TFLite conversion of {source.name} failed: {why}")
    details = json.loads(done.stdout.strip().splitlines()[-1])
    details["convert_s_with_start"] = round(time.perf_counter() - started, 2)
    return details


def _block_network() -> None:
    """Make every socket connection fail in this process: the conversion must not download anything."""
    import socket

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("mfsbench: the ONNX→TFLite conversion tried to open a network connection; "
                      "nothing may download at run time")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]


def _child(source: Path, out: Path, shapes: list[str]) -> dict[str, Any]:
    _block_network()
    started = time.perf_counter()
    import onnx2tf
    import tensorflow as tf

    imported = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mfsbench-onnx2tf-") as tmp:
        # onnx2tf names unnamed nodes (sng4onnx) by rewriting its *input file* in place: measured, the
        # card's file then failed its sha256. It converts a private copy; the user's file is only read.
        copy = Path(tmp) / "input" / "model.onnx"
        copy.parent.mkdir()
        shutil.copyfile(source, copy)
        prepared = _prepare_for_onnx2tf(copy, shapes)
        # a graph whose inputs are all 3-channel images makes onnx2tf (even at fp32) load sample data
        # for its dummy inference from its cwd, or download it from GitHub: it finds it in its cwd
        np.save(Path(tmp) / SAMPLE_FILE, np.random.default_rng(0).random((20, 128, 128, 3), np.float32))
        os.chdir(tmp)
        onnx2tf.convert(input_onnx_file_path=str(copy), output_folder_path=str(Path(tmp) / "saved_model"),
                        non_verbose=True,
                        not_use_onnxsim=True, output_signaturedefs=True,
                        overwrite_input_shape=shapes or None)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved_model"))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        flat = converter.convert()
    partial = out.with_name(out.stem + ".partial.tflite")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(flat)
    partial.replace(out)  # a killed run leaves no half-written file under the final name
    return {"converter": describe_converter(), **{k: v for k, v in converter_versions().items()},
            "onnxsim": "not used (not_use_onnxsim)", "ops": "TFLITE_BUILTINS only (no Flex ops)",
            "fixed_input_shapes": shapes, "prepared": prepared, "onnx2tf_sample_data": SAMPLE_NOTE,
            "import_s": round(imported - started, 2),
            "convert_s": round(time.perf_counter() - imported, 2), "network": "blocked during conversion"}


def _prepare_for_onnx2tf(path: Path, shapes: list[str]) -> str:
    """Rewrite ``path`` (the private copy) into what onnx2tf 1.28.8 converts correctly; checked exact.

    * ``Constant`` nodes become initializers: onnx2tf fails on list-valued ones (``value_floats``,
      ``value_ints``: "'list' object has no attribute 'shape'", measured on the student's frame stage
      as torch exports it without optimisation);
    * a graph newer than opset :data:`MAX_OPSET` is lowered to it with ``onnx.version_converter``:
      above, onnx2tf writes ``Resize``'s ``align_corners`` as a half-pixel resize (measured: one
      bilinear ×2 ``align_corners=True`` upsample at opset 20 came out of LiteRT 0.37 off, the student's
      frame stage 4.6e-4 off).

    ONNX Runtime must give identical outputs for the original and the rewritten graph on a seeded input.

    Raises:
        MfsbenchError: the version converter fails, or the rewritten graph computes something else.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper, version_converter

    model = onnx.load(str(path))
    notes = []
    kept, folded = [], 0
    for node in model.graph.node:
        attr = node.attribute[0] if node.op_type == "Constant" and len(node.attribute) == 1 else None
        if attr is None or attr.name not in FOLDABLE:
            kept.append(node)
            continue
        value = helper.get_attribute_value(attr)
        array = (numpy_helper.to_array(value) if attr.name == "value"
                 else np.asarray(value, np.float32 if "float" in attr.name else np.int64))
        model.graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
        folded += 1
    if folded:
        del model.graph.node[:]
        model.graph.node.extend(kept)
        notes.append(f"{folded} Constant node(s) made initializers")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset > MAX_OPSET:
        try:
            model = version_converter.convert_version(model, MAX_OPSET)
            onnx.checker.check_model(model)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MfsbenchError(f"the graph's opset {opset} could not be rewritten to {MAX_OPSET}, where "
                                f"onnx2tf 1.28.8 converts Resize correctly: {first}") from None
        notes.append(f"opset {opset} → {MAX_OPSET} (onnx.version_converter): onnx2tf 1.28.8 converts Resize "
                     f"align_corners only at opset ≤ {MAX_OPSET}")
    if not notes:
        return f"as the card's file (opset {opset})"
    before = path.with_name("original.onnx")
    path.replace(before)
    onnx.save(model, str(path))
    rng = np.random.default_rng(0)
    feeds = {name: rng.random(tuple(int(d) for d in dims.split(",")), np.float32)
             for name, _, dims in (item.rpartition(":") for item in shapes)}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    runs = [ort.InferenceSession(str(f), options, providers=["CPUExecutionProvider"]).run(None, feeds)
            for f in (before, path)]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(*runs, strict=True))
    if worst > 1e-6:
        raise MfsbenchError(f"rewriting the graph for onnx2tf ({'; '.join(notes)}) changed its outputs by "
                            f"{worst:.2e} in ONNX Runtime; not converted")
    return f"{'; '.join(notes)}; on the private copy, ONNX Runtime max |diff| {worst:.1e}"


def io_layout(path: Path, onnx_inputs: Mapping[str, Sequence[int]],
              onnx_outputs: Sequence[Sequence[int]]) -> dict[str, Any]:
    """The file's inputs and outputs, in the order the LiteRT runtime lists them, each matched to the
    ONNX graph's tensor and its layout (``NHWC`` when the file holds the NCHW tensor transposed).

    ``onnx_inputs``: ONNX input name → static shape; ``onnx_outputs``: the ONNX outputs' shapes in
    graph order (onnx2tf names the file's outputs ``output_<index>``).

    Raises:
        MfsbenchError: a file tensor that matches no ONNX tensor by name and shape.
    """
    from mfsbench.device.runtimes.litert import io_details
    from mfsbench.optional import require

    litert = require("ai_edge_litert.interpreter", "ai-edge-litert", "reading a converted card's TFLite file")
    interpreter = litert.Interpreter(model_path=str(path))
    ins, outs = io_details(interpreter)
    by_clean = {re.sub(r"[^A-Za-z0-9_]", "_", name): name for name in onnx_inputs}
    inputs = []
    for name, detail in ins:
        onnx_name = name if name in onnx_inputs else by_clean.get(name)
        if onnx_name is None:
            raise MfsbenchError(f"{path.name}: input {name!r} matches no input of the card's graph "
                                f"({', '.join(onnx_inputs)})")
        inputs.append({"file": name, "onnx": onnx_name, "file_shape": [int(d) for d in detail["shape"]],
                       "onnx_shape": [int(d) for d in onnx_inputs[onnx_name]],
                       "layout": _layout(path, name, detail["shape"], onnx_inputs[onnx_name])})
    outputs = []
    for position, (name, detail) in enumerate(outs):
        tail = name.rsplit("_", 1)[-1]
        index = int(tail) if name.startswith("output_") and tail.isdigit() else position
        if index >= len(onnx_outputs):
            raise MfsbenchError(f"{path.name}: output {name!r} has no ONNX output {index}")
        outputs.append({"file": name, "onnx_index": index, "file_shape": [int(d) for d in detail["shape"]],
                        "onnx_shape": [int(d) for d in onnx_outputs[index]],
                        "layout": _layout(path, name, detail["shape"], onnx_outputs[index])})
    return {"inputs": inputs, "outputs": outputs, "read_from": "the LiteRT interpreter's tensor details"}


def _layout(path: Path, name: str, file_shape: Sequence[int], onnx_shape: Sequence[int]) -> str:
    file_shape, onnx_shape = [int(d) for d in file_shape], [int(d) for d in onnx_shape]
    if len(onnx_shape) == 4 and file_shape == [onnx_shape[0], onnx_shape[2], onnx_shape[3], onnx_shape[1]]:
        return "NHWC"  # onnx2tf's channels-last boundary (also when C == H == W: that is what it writes)
    if file_shape == onnx_shape:
        return "as ONNX"
    raise MfsbenchError(f"{path.name}: tensor {name!r} has shape {file_shape}, which is neither the ONNX "
                        f"shape {onnx_shape} nor its NHWC transpose")


def to_file(array: np.ndarray, layout: str) -> np.ndarray:
    """An ONNX-layout array (batched) in the file's layout."""
    value = np.asarray(array, np.float32)
    return np.ascontiguousarray(value.transpose(0, 2, 3, 1) if layout == "NHWC" else value)


def inputs_in_file_order(sample: Sequence[Any], onnx_names: Sequence[str],
                         layout: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    """One sample given in the ONNX graph's input order ((C,H,W) or batched) → the file's order and
    layout, batched."""
    from mfsbench.export.base import as_nchw_batch

    by_name = dict(zip(onnx_names, sample, strict=True))
    return tuple(to_file(as_nchw_batch(by_name[item["onnx"]]), item["layout"]) for item in layout["inputs"])


def outputs_in_file_order(outputs: Sequence[np.ndarray], layout: Mapping[str, Any]) -> list[np.ndarray]:
    """ONNX outputs (graph order) → the file's output order and layout."""
    return [to_file(outputs[item["onnx_index"]], item["layout"]) for item in layout["outputs"]]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        sys.stderr.write("usage: python -m mfsbench.export.card_tflite SRC.onnx OUT.tflite [name:d,d,...]\n")
        return 2
    try:
        details = _child(Path(args[0]), Path(args[1]), args[2:])
    except (MfsbenchError, BadInputError) as exc:
        sys.stderr.write(f"mfsbench: {exc}\n")
        return 1
    except Exception as exc:  # the converter's own failure, as one line for the parent
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        sys.stderr.write(f"mfsbench: {type(exc).__name__}: {first}\n")
        return 1
    sys.stdout.write(json.dumps(details) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
