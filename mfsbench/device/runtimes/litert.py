"""LiteRT (TFLite) interpreter with its default XNNPACK delegate: the desktop stand-in for phones.

``ai_edge_litert.interpreter.Interpreter`` applies XNNPACK by default in CPU builds, with
``num_threads`` as the budget. This one adapter serves both timing and export parity, so the file
that is verified is run exactly as the file that is timed.

* Names and order come from the ``serving_default`` signature when the file has one (every
  litert-torch export does): inputs ``args_0, args_1, …`` and outputs ``output_0, output_1, …``
  sorted by their trailing index (``args_10`` after ``args_2``), i.e. the torch module's positional
  order. The interpreter's own tensor lists are in graph order, which quantization can reshuffle.
  Files without a signature fall back to the interpreter's input/output lists.
* The int8 exports of :mod:`mfsbench.export.tflite` have float32 I/O: their ``QUANTIZE`` and
  ``DEQUANTIZE`` ops are inside the graph and run in the interpreter. A file with integer I/O (a
  full-integer int8 file from elsewhere) is quantized on the way in and dequantized on the way out
  in numpy with the file's own scale and zero point, so callers always pass and get float32; that
  numpy work is part of the timed run (0.21–0.23 ms per run on the 224² student frame stage,
  measured alone) and ``info["io_dtypes"]`` says ``int8`` so a record shows it.

Measured on the student frame stage (interleaved medians, shared 2-core AVX2/FMA EPYC, issue-5
report): the XNNPACK delegate is what makes it fast (fp32 17.6 ms vs 65.6 ms with builtin kernels
only; int8 19.0 vs 125 ms, so int8 does run in XNNPACK); static int8 is *not* faster than fp32 on
this CPU (2 threads 9.2–11.8 vs 8.5–10.1 ms, 1 thread 18.5 vs 16.7 ms) because without AVX-512
VNNI XNNPACK's int8 kernels do no more MACs per cycle than fp32 FMA; the fp16 (weight-only) file
runs at fp32 speed (17.0 vs 17.4 ms); ``experimental_default_delegate_latest_features`` and the
``CompiledModel`` API were within noise (19.7 / 21.1 vs 21.2 ms); YNNPACK is not in this wheel.

What ran is read back (:data:`mfsbench.device.axis.READBACK_KEYS`) from the timed interpreter's own
operator list (``Interpreter._get_ops_details()``, the file's operators with the dtypes of their
operand tensors; with XNNPACK applied the list still holds every original node, the ``DELEGATE``
nodes that replace them in the execution plan are skipped). :data:`MATRIX_OPS` are counted by the
dtype of their data input: XNNPACK runs a conv whose operands are int8 with its QS8 kernels and a
float32 one with its F32 kernels. An fp16-weights file feeds its convs through ``DEQUANTIZE`` (fp16
→ f32), so its convs read back fp32 (its weights are counted apart, ``weight_precisions``).

Layout is whatever the file has (litert-torch keeps NCHW at the boundary, onnx2tf gives NHWC): inputs
must come in the file's own shape (a mismatch is one line naming both), and ``info["io_shapes"]``
records the shapes read back from the interpreter; a converted card's parity data is written in that
layout by the sweep (:mod:`mfsbench.export.card_tflite`), so no transpose is timed.
The signature runner itself is not used for the call: it resizes and re-allocates every tensor on
each invocation, which is overhead no app pays.
"""

from __future__ import annotations

from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.device.axis import axis_precision
from mfsbench.device.runtimes.base import (
    SimplePrepared,
    TensorInfo,
    check_compute,
    check_inputs,
    check_threads,
    precision_readback,
)
from mfsbench.errors import BadInputError
from mfsbench.optional import require

SIGNATURE = "serving_default"

#: what this runtime can be asked to compute (an fp16-weights file computes fp32)
COMPUTES = ("fp32", "int8")
#: TFLite builtin ops that are matrix products (input 0 = data, input 1 = weights/second operand)
MATRIX_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV",
              "CONV_3D")


def signature_position(name: str) -> tuple[int, str]:
    """Sort key: ``args_10`` after ``args_2`` (litert-torch appends the positional index)."""
    tail = name.rsplit("_", 1)[-1]
    return (int(tail) if tail.isdigit() else 0, name)


def io_details(interpreter: Any) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """(name, detail) for inputs and outputs, in signature-position order when there is one: the
    order :meth:`LiteRtRuntime.prepare` lists them in (a converted card's parity data is written in
    it, :mod:`mfsbench.export.card_tflite`)."""
    if SIGNATURE in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(SIGNATURE)
        ins, outs = runner.get_input_details(), runner.get_output_details()
        return ([(n, ins[n]) for n in sorted(ins, key=signature_position)],
                [(n, outs[n]) for n in sorted(outs, key=signature_position)])
    return ([(d["name"], d) for d in interpreter.get_input_details()],
            [(d["name"], d) for d in interpreter.get_output_details()])


def _quantizer(detail: dict) -> Any:
    """float32 → the tensor's dtype: identity for float tensors, affine quantization for integers."""
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return lambda value: np.ascontiguousarray(value, dtype=dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return lambda value: np.clip(np.round(value / scale) + zero, info.min, info.max).astype(dtype)


def _dequantizer(detail: dict) -> Any:
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return lambda value: value
    scale, zero = detail["quantization"]
    return lambda value: (value.astype(np.float32) - zero) * np.float32(scale)


class LiteRtRuntime:
    """``ai_edge_litert`` interpreter, XNNPACK, ``num_threads``; float32 in and out."""

    name = "litert"
    package = "ai-edge-litert"
    module = "ai_edge_litert.interpreter"
    artifact = "tflite"

    def __init__(self, compute: str = "fp32") -> None:
        #: what the cell's plan asks for; the file decides what runs, ``prepare`` reads it back
        self.compute = check_compute(self.name, compute, COMPUTES)

    def prepare(self, artifact_path: str | Path, threads: int) -> SimplePrepared:
        lrt = require(self.module, self.package, f"the {self.name} runtime")
        check_threads(threads)
        interpreter = lrt.Interpreter(model_path=str(artifact_path), num_threads=threads)
        interpreter.allocate_tensors()
        ins, outs = io_details(interpreter)
        infos = [TensorInfo(n, tuple(int(x) for x in d["shape"]), "float32") for n, d in ins]
        feeds = {n: (d["index"], _quantizer(d)) for n, d in ins}
        shapes = {n: tuple(int(x) for x in d["shape"]) for n, d in ins}
        fetches = [(d["index"], _dequantizer(d)) for _, d in outs]
        set_tensor, invoke, get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            check_inputs(infos, inputs)
            for name, value in inputs.items():
                if value.shape != shapes[name]:  # e.g. NCHW fed to an NHWC file: one line, not a crash
                    raise BadInputError(f"input {name!r} is {list(value.shape)} but "
                                        f"{Path(artifact_path).name} takes {list(shapes[name])} "
                                        "(the file's own layout); feed that")
                index, quantize = feeds[name]
                set_tensor(index, quantize(value))
            invoke()
            return [dequantize(get_tensor(index)) for index, dequantize in fetches]  # get_tensor copies

        io = sorted({np.dtype(d["dtype"]).name for _, d in ins + outs})
        readback = read_matrix_ops(interpreter)
        info: dict[str, Any] = {"threads": threads, "precision": readback["executed_precision"],
                                "requested_precision": self.compute, **readback, "delegate": "xnnpack",
                                "io_dtypes": ",".join(io),
                                # the layout the file really has, read back from the interpreter
                                "io_shapes": {"inputs": {n: list(v) for n, v in shapes.items()},
                                              "outputs": {n: [int(x) for x in d["shape"]] for n, d in outs}},
                                "ai_edge_litert": metadata.version("ai-edge-litert")}
        return SimplePrepared(infos, run, info)


def read_matrix_ops(interpreter: Any) -> dict[str, Any]:
    """Read-back of a LiteRT interpreter's matrix ops: the READBACK_KEYS, ``matrix_ops`` by op name,
    ``weight_precisions`` (the stored weight dtype, through a ``DEQUANTIZE`` when there is one)."""
    details = getattr(interpreter, "_get_ops_details", None)
    if details is None:  # a future interpreter without the listing: say so, never guess
        return {**precision_readback([], "not read: this ai-edge-litert has no _get_ops_details()"),
                "matrix_ops": {}, "weight_precisions": {}}
    ops = [op for op in details() if op["op_name"] != "DELEGATE"]
    dequantized = {int(op["outputs"][0]): np.dtype(op["operand_types"][0]).name
                   for op in ops if op["op_name"] == "DEQUANTIZE" and len(op["outputs"])}
    computed, kinds, weights = [], Counter(), []
    for op in ops:
        if op["op_name"] not in MATRIX_OPS:
            continue
        kinds[op["op_name"]] += 1
        # TRANSPOSE_CONV lists (output shape, weights, data): its data operand is the third; the
        # weights (or second matmul operand) are input 1 for every matrix op
        data = 2 if op["op_name"] == "TRANSPOSE_CONV" else 0
        types = [np.dtype(t).name for t in op["operand_types"]]
        computed.append(types[data] if len(types) > data else "unknown")
        if len(types) > 1:
            weights.append(dequantized.get(int(op["inputs"][1]), types[1]))
    readback = precision_readback(computed, "LiteRT interpreter op list (_get_ops_details of the timed "
                                            "interpreter, DELEGATE nodes skipped): matrix ops by data "
                                            "operand dtype")
    weight_counts = Counter(axis_precision(w) for w in weights)
    return {**readback, "matrix_ops": dict(sorted(kinds.items())),
            "weight_precisions": dict(sorted(weight_counts.items()))}
