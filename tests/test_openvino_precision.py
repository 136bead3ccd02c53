"""OpenVINO's precision axis: what is asked (the compute request), what ran (read back from the
compiled runtime model), NNCF int8 on real faces, and what benchmark_app reports it used.

The read-back is checked three ways: against an independent count of the torch net's matrix ops,
against the runtime model's rt_info read here by hand, and with the request label changed behind
the runtime's back (the record must follow the kernels, not the label).
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mfsbench.device.axis import READBACK_KEYS
from mfsbench.device.runtimes import get_runtime
from mfsbench.device.runtimes.benchmark_app import (
    benchmark_app_command,
    find_benchmark_app,
    parse_benchmark_app,
    run_benchmark_app,
    tool_settings,
)
from mfsbench.errors import BadInputError, MissingDependencyError
from tests.face_assets import face_photos_fixture  # noqa: F401

DATA = Path(__file__).parent / "data"
SHAPE = (1, 3, 32, 32)
CALIBRATION_PHOTOS = ("obama", "obama2", "biden", "t1", "astronaut")
#: never shown to the quantiser: int8 parity is judged on these
HELD_OUT_PHOTOS = ("obama3", "obama_partial_face", "obama_partial_face2", "tom_hanks")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


needs_openvino = pytest.mark.skipif(not _has("openvino"), reason="openvino not installed")


class ConvFcNet(nn.Module):
    """3 convolutions (one depthwise) and one fully connected layer: 4 matrix ops, plus BN, ReLU,
    bilinear upsampling and sigmoid, which are not."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU6(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(8, 3, 1),
        )
        self.head = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body(x).flatten(1)))


def _matrix_modules(net: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)) for m in net.modules())


@pytest.fixture(scope="module")
def conv_ir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, np.ndarray, np.ndarray]:
    """An fp32 IR of :class:`ConvFcNet`, its matrix-op count from torch, an input and torch's output."""
    if not _has("openvino"):
        pytest.skip("openvino not installed")
    import openvino as ov

    torch.manual_seed(0)
    net = ConvFcNet().eval()
    folder = tmp_path_factory.mktemp("ov")
    x = torch.rand(*SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (x,), str(folder / "net.onnx"), input_names=["x"], output_names=["y"],
                          dynamo=False, external_data=False)
    xml = folder / "net.xml"
    ov.save_model(ov.convert_model(str(folder / "net.onnx")), str(xml), compress_to_fp16=False)
    with torch.no_grad():
        ref = net(x).numpy()
    return xml, _matrix_modules(net), x.numpy(), ref


def _rt_info_by_hand(xml: Path, hint: str, threads: int = 1) -> dict[str, int]:
    """Matrix ops of the runtime model by the precision of their data input, read here without the
    runtime's code."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint})
    names = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "u8": "int8", "i8": "int8"}
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        if op.get_rt_info()["layerType"].astype(str) in ("Convolution", "FullyConnected", "MatMul",
                                                         "Deconvolution"):
            source = op.input_value(0)
            produced = source.get_node().get_rt_info()["outputPrecisions"].astype(str).split(",")
            key = names[produced[source.get_index()]]
            counts[key] = counts.get(key, 0) + 1
    return counts


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


# --- the request is a constructor argument --------------------------------------------------------


def test_compute_is_validated_and_the_bf16_pseudo_runtime_is_gone() -> None:
    with pytest.raises(BadInputError, match="unknown compute precision 'fp8'"):
        get_runtime("openvino", compute="fp8")
    with pytest.raises(BadInputError, match="unknown runtime 'openvino-bf16'"):
        get_runtime("openvino-bf16")
    for compute, hint in (("fp32", "f32"), ("bf16", "bf16"), ("fp16", "f16"), ("int8", "f32")):
        runtime = get_runtime("openvino", compute=compute)
        assert runtime.name == "openvino" and runtime.compute == compute  # type: ignore[attr-defined]
        assert runtime._config(2)["INFERENCE_PRECISION_HINT"] == hint  # type: ignore[attr-defined]
    for name in ("onnxruntime", "litert"):  # every factory passes the request on
        assert get_runtime(name, compute="int8").compute == "int8"  # type: ignore[attr-defined]
    with pytest.raises(BadInputError, match="torch-eager cannot be asked to compute 'int8'"):
        get_runtime("torch-eager", compute="int8")


# --- read-back ------------------------------------------------------------------------------------


@needs_openvino
def test_f32_readback_counts_every_matrix_op_as_fp32(conv_ir) -> None:
    xml, matrix_ops, x, ref = conv_ir
    prepared = get_runtime("openvino", compute="fp32").prepare(xml, threads=1)
    info = prepared.info
    assert set(READBACK_KEYS) <= set(info)
    # depthwise conv and the Linear (FullyConnected in the runtime model) are counted too
    assert info["op_precisions"] == {"fp32": matrix_ops} == {"fp32": 4}
    assert info["executed_precision"] == "fp32"
    assert "runtime model rt_info" in info["precision_source"]
    assert info["openvino"] in info["precision_source"]
    assert info["inference_precision_hint"] == "f32" and info["inference_num_threads"] == 1
    assert sum(info["matrix_primitives"].values()) == matrix_ops
    (out,) = prepared.run({"x": x})
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


@needs_openvino
@pytest.mark.parametrize(("compute", "hint"), [("bf16", "bf16"), ("fp16", "f16")])
def test_half_precision_requests_read_back_what_the_runtime_model_ran(conv_ir, compute, hint) -> None:
    xml, matrix_ops, _, _ = conv_ir
    info = get_runtime("openvino", compute=compute).prepare(xml, threads=1).info
    assert info["compute"] == compute and info["requested_precision_hint"] == hint
    assert info["op_precisions"] == _rt_info_by_hand(xml, hint)  # the kernels, not the request
    assert sum(info["op_precisions"].values()) == matrix_ops
    native = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}[compute]
    flags = _cpu_flags()
    if flags and not flags & set(native):
        # e.g. this AVX2-only CPU: the plugin computes f32 whatever the hint, and says so
        assert info["executed_precision"] == "fp32"
        assert info["inference_precision_hint"] == "f32"


@needs_openvino
def test_executed_precision_follows_the_kernels_not_the_request_label(conv_ir) -> None:
    """The request says bf16; the plugin is (behind the label's back) given f32, so every kernel
    runs f32: the info must say fp32 and keep the bf16 request apart."""
    xml, matrix_ops, _, _ = conv_ir
    runtime = get_runtime("openvino", compute="fp32")
    runtime.compute = "bf16"  # type: ignore[attr-defined]
    info = runtime.prepare(xml, threads=1).info
    assert info["compute"] == "bf16"
    assert info["executed_precision"] == "fp32" and info["op_precisions"] == {"fp32": matrix_ops}


class _FakeNode:
    """A runtime-model node: rt_info plus the producers of its inputs."""

    def __init__(self, layer: str, outputs: str, primitive: str = "", runtime: str = "",
                 inputs: tuple[_FakeNode, ...] = ()) -> None:
        self.rt = {"layerType": layer, "outputPrecisions": outputs, "primitiveType": primitive,
                   "runtimePrecision": runtime or outputs.split(",", maxsplit=1)[0]}
        self.inputs = inputs

    def get_rt_info(self) -> dict[str, str]:
        return self.rt

    def get_input_size(self) -> int:
        return len(self.inputs)

    def input_value(self, port: int) -> _FakeNode:
        return self.inputs[port]  # a producer with one output: node and index are itself and 0

    def get_node(self) -> _FakeNode:
        return self

    def get_index(self) -> int:
        return 0


class _FakeCompiled:
    def __init__(self, ops: list[_FakeNode]) -> None:
        self.ops = ops

    def get_runtime_model(self) -> _FakeCompiled:
        return self

    def get_ordered_ops(self) -> list[_FakeNode]:
        return self.ops


def test_read_back_counts_matrix_ops_by_the_data_they_compute_on() -> None:
    from mfsbench.device.runtimes.openvino import read_back

    bf16_in, f32_in, u8_in = (_FakeNode("Reorder", p) for p in ("bf16", "f32", "u8"))
    w_bf16, w_f16, w_i8 = (_FakeNode("Const", p) for p in ("bf16", "f16", "i8"))
    ops = [
        bf16_in, f32_in, u8_in, w_bf16, w_f16, w_i8,
        _FakeNode("Convolution", "bf16", "brgconv_avx512_core_amx_bf16", inputs=(bf16_in, w_bf16)),
        _FakeNode("Convolution", "f32", "brgconv_avx512_core_amx_bf16", inputs=(bf16_in, w_bf16)),
        # fp16 weights on f32 data: runtimePrecision says f16 (as openvino 2026.4.1 does), the
        # arithmetic is f32 and must be counted so
        _FakeNode("FullyConnected", "f32", "brgemm_avx2_f32", runtime="f16", inputs=(f32_in, w_f16)),
        _FakeNode("Convolution", "u8", "jit_avx2_I8", inputs=(u8_in, w_i8)),
        _FakeNode("Eltwise", "bf16", "jit_uni_bf16", inputs=(bf16_in,)),  # not a matrix op
    ]
    info = read_back(_FakeCompiled(ops), "0.0-test")
    assert info["op_precisions"] == {"bf16": 2, "fp32": 1, "int8": 1}
    assert info["executed_precision"] == "bf16"
    assert info["op_runtime_precisions"] == {"bf16": 1, "fp16": 1, "fp32": 1, "int8": 1}
    assert info["op_weight_precisions"] == {"bf16": 2, "fp16": 1, "int8": 1}
    assert info["op_output_precisions"] == {"bf16": 1, "fp32": 2, "int8": 1}
    assert info["matrix_primitives"]["brgconv_avx512_core_amx_bf16"] == 2
    assert "openvino 0.0-test" in info["precision_source"]
    empty = read_back(_FakeCompiled([_FakeNode("Reorder", "f32")]), "0.0-test")
    assert empty["executed_precision"] == "unknown" and empty["op_precisions"] == {}


# --- exports --------------------------------------------------------------------------------------


@needs_openvino
def test_fp16_ir_is_fp16_weights_computed_in_f32(tmp_path) -> None:
    from mfsbench.export import get_exporter

    torch.manual_seed(0)
    net = ConvFcNet().eval()
    artifact = get_exporter("openvino").export(net, (torch.rand(*SHAPE),), tmp_path, "fp16", stem="half")
    assert artifact.details["weights"] == "fp16" and artifact.details["compute"] == "f32"
    info = get_runtime("openvino", compute="fp32").prepare(artifact.path, threads=1).info
    assert info["executed_precision"] == "fp32" and info["op_precisions"] == {"fp32": 4}
    assert info["op_weight_precisions"].get("fp16", 0) > 0  # the file's weights are fp16, the math f32


def test_missing_nncf_is_one_line_naming_the_extra(monkeypatch) -> None:
    from mfsbench.export.openvino import quantize_int8

    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf → ImportError
    with pytest.raises(MissingDependencyError) as exc:
        quantize_int8(object(), [{"x": np.zeros(SHAPE, np.float32)}])
    message = str(exc.value)
    assert "\n" not in message and "'nncf'" in message and "mfsbench[export]" in message


def test_calibration_samples_must_match_the_stage_inputs() -> None:
    from mfsbench.export.openvino import calibration_feeds

    with pytest.raises(BadInputError, match="none given"):
        calibration_feeds([], ("target",))
    with pytest.raises(BadInputError, match="2 arrays; the stage takes 1"):
        calibration_feeds([(np.zeros((3, 8, 8)), np.zeros((3, 8, 8)))], ("target",))
    (feed,) = calibration_feeds([(np.zeros((3, 8, 8), np.float64),)], ("target",))
    assert feed["target"].shape == (1, 3, 8, 8) and feed["target"].dtype == np.float32


@needs_openvino
def test_nncf_int8_student_runs_int8_within_30db_on_held_out_faces(tmp_path, face_photos) -> None:
    if not _has("nncf"):
        pytest.skip("nncf not installed (pip install 'mfsbench[export]')")
    if not _has("dlib"):
        pytest.skip("dlib (dlib-bin) is needed to detect faces for calibration")
    import nncf

    from mfsbench.export import get_exporter
    from mfsbench.export.compare import compare_outputs
    from mfsbench.export.stages import (
        face_crops_per_photo,
        frame_stage_inputs,
        stage_input_names,
        stage_module,
    )
    from mfsbench.faces.detectors import read_image
    from mfsbench.registry import create_model, get_spec

    spec = get_spec("test_mobilefaceswap")
    torch.manual_seed(0)
    module, example = stage_module(spec, create_model(spec.name), "frame", 224)
    names = stage_input_names(spec, "frame")

    def crops(photos: tuple[str, ...], mirror: bool) -> list:
        images = [read_image(str(face_photos[p].path)) for p in photos if p in face_photos]
        per_photo = face_crops_per_photo(spec, 224, images, mirror=mirror)
        return frame_stage_inputs(spec, 224, [crop for found in per_photo for crop in found])

    calibration, held_out = crops(CALIBRATION_PHOTOS, False), crops(HELD_OUT_PHOTOS, True)
    assert len(calibration) >= 5 and len(held_out) >= 4
    assert not any(np.array_equal(h[0], c[0]) for h in held_out for c in calibration)

    artifact = get_exporter("openvino").export(module, example, tmp_path, "int8", input_names=names,
                                               calibration=calibration, stem="int8")
    details = artifact.details
    assert details["preset"] == "mixed" and nncf.__version__ in details["quantizer"]
    assert details["calibration_samples"] == details["subset_size"] == len(calibration)
    assert details["int8_weight_ops"] == details["weighted_ops"] > 0 and details["fake_quantize_ops"] > 0

    prepared = get_runtime("openvino", compute="int8").prepare(artifact.path, threads=2)
    assert prepared.info["executed_precision"] == "int8"
    assert prepared.info["requested_precision_hint"] == "f32"  # int8 comes from the file's quantisers
    assert prepared.info["op_precisions"].get("int8", 0) == details["weighted_ops"]
    input_names = [i.name for i in prepared.inputs]
    want, got = [], []
    with torch.no_grad():
        for sample in held_out:
            arrays = [a if a.ndim == 4 else a[None] for a in sample]
            want.append([o.numpy() for o in module(*(torch.from_numpy(a) for a in arrays))])
            got.append(prepared.run(dict(zip(input_names, arrays, strict=True))))
    parity = compare_outputs(want, got, artifact.output_names, fmt="openvino", precision="int8",
                             runtime="openvino int8")
    assert parity.psnr_db >= 30.0, parity
    assert parity.psnr_db < 100.0  # really quantised: an fp32 run would be ~140 dB


# --- benchmark_app ----------------------------------------------------------------------------

#: lines of ``benchmark_app -infer_precision bf16 -hint none -nstreams 1 -nthreads 2 -niter 20 -t 1``
#: on this AVX2-only CPU (openvino 2026.4.1), verbatim
AVX2_BF16_REQUEST = """\
[ INFO ]   NUM_STREAMS: 1
[ INFO ]   INFERENCE_NUM_THREADS: 2
[ INFO ]   PERF_COUNT: NO
[ INFO ]   INFERENCE_PRECISION_HINT: <Type: 'float32'>
[ INFO ]   PERFORMANCE_HINT: LATENCY
[ INFO ]   RUNTIME_REQUIREMENTS: meta=1.0;ov=2026.4.1;isa=Intel AVX2
[Step 10/11] Measuring performance (Start inference synchronously, limits: 1000 ms duration, 20 iterations)
[ INFO ] Benchmarking in inference only mode (inputs filling are not included in measurement loop).
[ INFO ] First inference took 3.29 ms
[Step 11/11] Dumping statistics report
[ INFO ] Execution Devices:['CPU']
[ INFO ] Count:            1946 iterations
[ INFO ] Duration:         1000.27 ms
[ INFO ] Latency:
[ INFO ]    Median:        76.68 us
[ INFO ]    Average:       84.86 us
[ INFO ]    Min:           71.28 us
[ INFO ]    Max:           655.54 us
[ INFO ] Throughput:   13043.59 FPS
"""


def test_benchmark_app_output_gives_threads_and_precision_it_used() -> None:
    recorded = parse_benchmark_app((DATA / "bench_app_tiny.txt").read_text())
    assert recorded["num_threads"] == 2 and recorded["inference_precision"] == "float32"
    assert recorded["runtime_isa"] == "Intel AVX-512 with Intel DL Boost and bfloat16 support"
    assert recorded["limits"] == "5000 ms duration"

    here = parse_benchmark_app(AVX2_BF16_REQUEST)
    assert here["inference_precision"] == "float32"  # asked bf16, compiled f32: recorded as printed
    assert here["runtime_isa"] == "Intel AVX2" and here["limits"] == "1000 ms duration, 20 iterations"
    assert here["latency_median_ms"] == pytest.approx(0.07668) and here["count"] == 1946

    cmd = benchmark_app_command("benchmark_app", "m.xml", niter=20, threads=4, precision="bf16")
    settings = tool_settings(here, 4, cmd, warmup=5)
    assert settings["threads"] == 2 and settings["requested_threads"] == 4  # parsed, not the request
    assert settings["requested_precision"] == "bf16"
    assert settings["warmup_requested"] == 5 and settings["warmup_runs_excluded"] == 1
    no_threads = parse_benchmark_app(AVX2_BF16_REQUEST.replace("INFERENCE_NUM_THREADS: 2\n", ""))
    assert "threads" not in tool_settings(no_threads, 4, cmd, warmup=1)  # never filled in from the request


def test_benchmark_app_command_honours_duration_warmup_and_precision() -> None:
    cmd = benchmark_app_command("benchmark_app", "m.xml", niter=30, threads=2, precision="fp16",
                                min_seconds=2.2, warmup=0)
    assert cmd[cmd.index("-niter") + 1] == "30" and cmd[cmd.index("-t") + 1] == str(math.ceil(2.2))
    assert cmd[cmd.index("-infer_precision") + 1] == "f16" and "-no_warmup" in cmd
    default = benchmark_app_command("benchmark_app", "m.xml", niter=30, precision="int8")
    assert default[default.index("-infer_precision") + 1] == "f32"  # int8 IRs carry their quantisers
    assert "-t" not in default and "-no_warmup" not in default
    assert benchmark_app_command("benchmark_app", "m.xml", min_seconds=0.3)[-4:-2] == ["-t", "1"]
    with pytest.raises(BadInputError, match="precision 'int4'"):
        benchmark_app_command("benchmark_app", "m.xml", precision="int4")
    with pytest.raises(BadInputError, match="warmup"):
        benchmark_app_command("benchmark_app", "m.xml", warmup=-1)


@needs_openvino
def test_benchmark_app_run_reports_its_own_threads_and_warmup(conv_ir) -> None:
    if find_benchmark_app() is None:
        pytest.skip("benchmark_app console script not found")
    xml = conv_ir[0]
    result = run_benchmark_app(xml, niter=5, threads=1, precision="fp32", timeout_s=120, warmup=0)
    assert result["threads"] == 1 == result["num_threads"]
    assert result["warmup_runs_excluded"] == 0 and "first_inference_ms" not in result
    assert result["inference_precision"] == "float32" and result["count"] >= 5
    warmed = run_benchmark_app(xml, niter=5, threads=1, precision="fp32", timeout_s=120, min_seconds=1,
                               warmup=3)
    assert warmed["warmup_runs_excluded"] == 1 and warmed["warmup_requested"] == 3
    assert warmed["duration_ms"] >= 1000.0  # -t 1: at least a second of measured runs
