"""Every runtime reads back what its matrix ops computed (device axis READBACK_KEYS), from what ran.

The ONNX cases are built by hand so the answer is known: an fp32 graph; a QDQ conv that ONNX
Runtime fuses into ``QLinearConv`` (int8); and the *same* int8 weights behind a ``DequantizeLinear``
feeding a float ``Conv`` (fp32: int8 in the file, not executed). Both QDQ files hold int8 tensors,
so only a read-back of the optimised graph tells them apart. The LiteRT cases are real exports of a
small conv net (fp32, fp16 weights, static int8 with float and with int8 I/O).
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mfsbench.device.axis import READBACK_KEYS
from mfsbench.errors import BadInputError


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


needs_ort = pytest.mark.skipif(not (_has("onnxruntime") and _has("onnx")), reason="onnxruntime not installed")
needs_litert = pytest.mark.skipif(
    not (_has("litert_torch") and _has("ai_edge_quantizer") and _has("ai_edge_litert")),
    reason="litert-torch / ai-edge-quantizer / ai-edge-litert not installed",
)

C_IN, C_OUT, SIDE = 8, 16, 12


def _save(path: Path, nodes: list, initializers: list, opset: int = 20) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "readback",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C_IN, SIDE, SIDE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C_OUT, SIDE, SIDE])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((C_OUT, C_IN, 3, 3)).astype(np.float32) * 0.1,
            rng.standard_normal(C_OUT).astype(np.float32) * 0.1)


def _fp32_model(path: Path) -> Path:
    from onnx import helper, numpy_helper

    w, b = _weights()
    w2 = np.random.default_rng(1).standard_normal((C_OUT, C_OUT, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"])]
    return _save(path, nodes, [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
                               numpy_helper.from_array(w2, "w2")])


def _quantized_weights() -> list:
    """Per-channel int8 weights, their scales and zero points, and an int32 bias (x scale 1/255)."""
    from onnx import numpy_helper

    w, b = _weights()
    w_scale = (np.abs(w).reshape(C_OUT, -1).max(axis=1) / 127).astype(np.float32)
    w_q = np.clip(np.round(w / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
    x_scale = np.float32(1 / 255)
    b_q = np.round(b / (x_scale * w_scale)).astype(np.int32)
    return [numpy_helper.from_array(w_q, "w_q"), numpy_helper.from_array(w_scale, "w_scale"),
            numpy_helper.from_array(np.zeros(C_OUT, np.int8), "w_zero"),
            numpy_helper.from_array(b_q, "b_q"), numpy_helper.from_array(x_scale * w_scale, "b_scale"),
            numpy_helper.from_array(np.zeros(C_OUT, np.int32), "b_zero"),
            numpy_helper.from_array(x_scale, "x_scale"), numpy_helper.from_array(np.uint8(0), "x_zero"),
            numpy_helper.from_array(np.float32(0.05), "y_scale"),
            numpy_helper.from_array(np.uint8(128), "y_zero")]


def _dequantized_weight_nodes() -> list:
    from onnx import helper

    return [helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], axis=0),
            helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zero"], ["b"], axis=0)]


def _qdq_model(path: Path) -> Path:
    """x → Q → DQ → Conv(DQ(w), DQ(b)) → Q → DQ: the pattern ORT fuses into QLinearConv."""
    from onnx import helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
             *_dequantized_weight_nodes(),
             helper.make_node("Conv", ["x_dq", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "y_scale", "y_zero"], ["c_q"]),
             helper.make_node("DequantizeLinear", ["c_q", "y_scale", "y_zero"], ["y"])]
    return _save(path, nodes, _quantized_weights())


def _weight_only_dq_model(path: Path) -> Path:
    """The same int8 weights, dequantised into a float Conv on float activations: nothing to fuse."""
    from onnx import helper

    nodes = [*_dequantized_weight_nodes(),
             helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])]
    return _save(path, nodes, _quantized_weights())


def _prepare_ort(path: Path):
    from mfsbench.device.runtimes.onnxruntime import OnnxRuntime

    prepared = OnnxRuntime().prepare(path, 1)
    for key in READBACK_KEYS:
        assert key in prepared.info, key
    x = np.random.default_rng(2).random((1, C_IN, SIDE, SIDE), dtype=np.float32)
    assert prepared.run({"x": x})[0].shape == (1, C_OUT, SIDE, SIDE)  # it runs, as read back
    return prepared, x


@needs_ort
def test_ort_fp32_graph_reads_back_fp32(tmp_path) -> None:
    prepared, _ = _prepare_ort(_fp32_model(tmp_path / "fp32.onnx"))
    assert prepared.info["executed_precision"] == "fp32"
    assert prepared.info["op_precisions"] == {"fp32": 2}
    assert prepared.info["precision"] == "fp32"
    assert "optimised graph" in prepared.info["precision_source"]


@needs_ort
def test_ort_fused_qdq_conv_reads_back_int8(tmp_path) -> None:
    prepared, _ = _prepare_ort(_qdq_model(tmp_path / "qdq.onnx"))
    info = prepared.info
    assert info["executed_precision"] == "int8"
    assert info["op_precisions"] == {"int8": 1}
    assert [name.rsplit(".", 1)[-1] for name in info["matrix_ops"]] == ["QLinearConv"]
    assert info["dequantized_weight_ops"] == 0


@needs_ort
def test_ort_dequantized_weights_into_float_conv_read_back_fp32(tmp_path) -> None:
    """Same int8 weights as the fused case, but ORT runs a float Conv: the read-back says fp32."""
    prepared, x = _prepare_ort(_weight_only_dq_model(tmp_path / "weight_only.onnx"))
    info = prepared.info
    assert info["executed_precision"] == "fp32"
    assert info["op_precisions"] == {"fp32": 1}
    assert info["dequantized_weight_ops"] == 1
    # and it does compute in float: the output is the float conv of the dequantised weights
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(str(tmp_path / "weight_only.onnx"), so, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(prepared.run({"x": x})[0], plain.run(None, {"x": x})[0], atol=1e-5)


@needs_ort
def test_ort_readback_matches_the_kernels_the_profiler_sees(tmp_path) -> None:
    """The optimised graph read back is the one the session runs: same matrix kernels as its trace."""
    from mfsbench.device.runtimes.onnxruntime import FLOAT_MATRIX_OPS, INT8_MATRIX_OPS, OnnxRuntime

    for path in (_fp32_model(tmp_path / "fp32.onnx"), _qdq_model(tmp_path / "qdq.onnx")):
        runtime = OnnxRuntime()
        info = runtime.prepare(path, 1).info
        x = np.random.default_rng(3).random((1, C_IN, SIDE, SIDE), dtype=np.float32)
        profile = runtime.profile(path, 1, {"x": x}, runs=2)
        # top_nodes holds every node of graphs this small: one (node, op type, ms) per executed node
        traced = Counter(op for _, op, _ in profile.top_nodes if op in FLOAT_MATRIX_OPS | INT8_MATRIX_OPS)
        read = Counter()
        for name, count in info["matrix_ops"].items():
            read[name.rsplit(".", 1)[-1]] += count
        assert traced and traced == read, (path.name, traced, read)


def test_compute_requests_a_runtime_cannot_honour_are_refused() -> None:
    from mfsbench.device.runtimes.litert import LiteRtRuntime
    from mfsbench.device.runtimes.onnxruntime import OnnxRuntime
    from mfsbench.device.runtimes.torch_eager import TorchEagerRuntime

    assert OnnxRuntime(compute="int8").compute == "int8"
    assert LiteRtRuntime("int8").compute == "int8"
    for make, compute in ((OnnxRuntime, "bf16"), (OnnxRuntime, "fp16"), (LiteRtRuntime, "bf16"),
                          (TorchEagerRuntime, "int8")):
        with pytest.raises(BadInputError, match=compute):
            make(compute=compute)


def test_torch_eager_reads_parameter_dtypes() -> None:
    import torch

    from mfsbench.device.runtimes.torch_eager import TorchEagerRuntime

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    info = TorchEagerRuntime().prepare(net, 1).info
    assert (info["executed_precision"], info["op_precisions"]) == ("fp32", {"fp32": 3})
    assert info["precision_source"].startswith("torch module parameter dtypes")
    info = TorchEagerRuntime().prepare(net.to(torch.bfloat16), 1).info  # read, not the request
    assert (info["executed_precision"], info["op_precisions"]) == ("bf16", {"bf16": 3})


class _SmallNet:
    """A conv net with a depthwise conv, a 1×1 conv and a dense head, and its input."""

    @staticmethod
    def build():
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 4, 1), torch.nn.Sigmoid(),
        ).eval()
        return net, (torch.rand(1, 3, 16, 16),)


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory) -> dict[str, Path]:
    """fp32, fp16-weight and int8 (float and int8 I/O) files of the small net."""
    from mfsbench.export.tflite import TfliteExporter

    net, example = _SmallNet.build()
    out = tmp_path_factory.mktemp("tflite")
    rng = np.random.default_rng(4)
    calibration = [(rng.random((3, 16, 16), dtype=np.float32),) for _ in range(8)]
    files = {}
    for label, precision, exporter in (("fp32", "fp32", TfliteExporter()), ("fp16", "fp16", TfliteExporter()),
                                       ("int8", "int8", TfliteExporter()),
                                       ("int8_int8io", "int8", TfliteExporter(float_io=False))):
        artifact = exporter.export(net, example, out, precision, input_names=("x",),
                                   calibration=calibration if precision == "int8" else None, stem=label)
        files[label] = artifact
    return files


@needs_litert
@pytest.mark.parametrize(("label", "executed", "weights", "io"), [
    ("fp32", "fp32", "fp32", "float32"),
    ("fp16", "fp32", "fp16", "float32"),  # fp16 weights, dequantised: computes f32
    ("int8", "int8", "int8", "float32"),
    ("int8_int8io", "int8", "int8", "int8"),
])
def test_litert_reads_back_what_its_convs_compute(tflite_files, label, executed, weights, io) -> None:
    from mfsbench.device.runtimes.litert import LiteRtRuntime

    artifact = tflite_files[label]
    prepared = LiteRtRuntime().prepare(artifact.path, 1)
    info = prepared.info
    assert info["executed_precision"] == executed
    assert info["op_precisions"] == {executed: 3}
    assert info["matrix_ops"] == {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 1}
    assert info["weight_precisions"] == {weights: 3}
    assert info["io_dtypes"] == io
    assert "_get_ops_details" in info["precision_source"]
    expected_io = "float32 (QUANTIZE/DEQUANTIZE inside the graph)" if label == "int8" else None
    if expected_io:
        assert artifact.details["io"] == expected_io
    if label == "fp16":
        assert (artifact.details["weights"], artifact.details["compute"]) == ("fp16", "f32")
