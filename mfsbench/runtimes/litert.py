"""LiteRT (TFLite) interpreter with its default XNNPACK delegate: the desktop stand-in for phones.

``ai_edge_litert.interpreter.Interpreter`` applies XNNPACK by default in CPU builds, with
``num_threads`` as the budget. Inputs are matched by the names the ``.tflite`` file stores (often
``serving_default_x:0``), which differ from the ONNX names; build inputs from ``prepared.inputs``.
Layout is whatever the file has (litert-torch keeps NCHW at the boundary, onnx2tf gives NHWC).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.runtimes.base import SimplePrepared, TensorInfo, check_inputs, check_threads, require


class LiteRtRuntime:
    """``ai_edge_litert`` interpreter, XNNPACK, ``num_threads``."""

    name = "litert"
    package = "ai-edge-litert"
    module = "ai_edge_litert.interpreter"
    artifact = "tflite"

    def prepare(self, artifact_path: str | Path, threads: int) -> SimplePrepared:
        lrt = require(self.module, self.package, self.name)
        check_threads(threads)
        interpreter = lrt.Interpreter(model_path=str(artifact_path), num_threads=threads)
        interpreter.allocate_tensors()
        in_details = interpreter.get_input_details()
        out_details = interpreter.get_output_details()
        infos = [
            TensorInfo(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name)
            for d in in_details
        ]
        index = {d["name"]: d["index"] for d in in_details}
        out_index = [d["index"] for d in out_details]

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            check_inputs(infos, inputs)
            for name, value in inputs.items():
                interpreter.set_tensor(index[name], value)
            interpreter.invoke()
            return [interpreter.get_tensor(i) for i in out_index]  # get_tensor copies

        info: dict[str, Any] = {"threads": threads, "precision": "file", "delegate": "xnnpack"}
        return SimplePrepared(infos, run, info)
