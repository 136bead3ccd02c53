"""A model card on LiteRT: its ONNX file converted by onnx2tf + TensorFlow (the ``cards-tflite`` extra).

The card's graph is built at test time (:mod:`tests.cards_fixtures`: inswapper_128's names and
shapes, an NCHW 128 px target and a 512-wide source). What is checked: the fp32 ``.tflite`` lands in
the per-user cache (never beside the card), with onnx2tf's channels-last inputs read back from the
interpreter and matched to the ONNX inputs; ``mfsbench device --backends litert`` times it with parity
against ONNX Runtime fp32 on the original file, fed in the file's own layout, and records the
converter and its version; fp16 and int8 come from that fp32 file; without the extra the cell is
skipped with a line naming it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mfsbench.cards import license as card_license
from mfsbench.cards.load import load_card
from mfsbench.records import read_records
from tests.cards_fixtures import (
    example_card,
    isolated_fixture,  # noqa: F401 - autouse: no consent, a per-test artefact cache
)
from tests.face_assets import face_photos_fixture  # noqa: F401 - registers the fixture


def _needs_converter() -> None:
    from mfsbench.export.card_tflite import missing_reason

    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("onnxruntime")


@pytest.mark.slow  # TensorFlow's start-up and the conversion: 10-20 s on 2 loaded cores
def test_card_converts_to_an_nhwc_tflite_in_the_cache_within_fp32_parity(tmp_path: Path,
                                                                         isolated: Path) -> None:
    _needs_converter()
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from mfsbench.export.card import card_artifact

    folder = tmp_path / "models"
    card = example_card(folder)
    loaded = load_card(card)
    names = ("target", "source")
    shapes = {"target": (1, 3, 128, 128), "source": (1, 512)}
    artifact = card_artifact(loaded.swapper_path, loaded.sha256["swapper"], "tflite", "fp32",
                             input_names=names, output_names=("output",), input_shapes=shapes)
    assert artifact.path.is_relative_to(isolated) and artifact.path.suffix == ".tflite"
    assert sorted(p.name for p in folder.iterdir()) == ["inswapper_128.onnx", "inswapper_128.toml"]
    # onnx2tf rewrites its input file in place: the card's own file must be untouched (a copy converted)
    assert hashlib.sha256(loaded.swapper_path.read_bytes()).hexdigest() == loaded.sha256["swapper"]
    details = artifact.details
    assert details["onnx2tf"] == "1.28.8" and details["converter"].startswith("onnx2tf 1.28.8")
    assert details["network"] == "blocked during conversion"
    layout = {i["onnx"]: (i["layout"], i["file_shape"]) for i in details["layout"]["inputs"]}
    assert layout == {"target": ("NHWC", [1, 128, 128, 3]), "source": ("as ONNX", [1, 512])}
    outputs = [(o["layout"], o["file_shape"]) for o in details["layout"]["outputs"]]
    assert outputs == [("NHWC", [1, 128, 128, 3])]

    rng = np.random.default_rng(0)
    target = rng.random((1, 3, 128, 128), dtype=np.float32)
    source = rng.standard_normal((1, 512)).astype(np.float32)
    want = ort.InferenceSession(str(loaded.swapper_path)).run(None, {"target": target, "source": source})[0]
    interpreter = Interpreter(model_path=str(artifact.path))
    runner = interpreter.get_signature_runner("serving_default")
    got = runner(target=target.transpose(0, 2, 3, 1), source=source)
    (value,) = got.values()
    assert np.abs(value.transpose(0, 3, 1, 2) - want).max() <= 1e-4
    again = card_artifact(loaded.swapper_path, loaded.sha256["swapper"], "tflite", "fp32",
                          input_names=names, output_names=("output",), input_shapes=shapes)
    assert again.path == artifact.path and again.details["cache"].startswith("reused")
    half = card_artifact(loaded.swapper_path, loaded.sha256["swapper"], "tflite", "fp16", input_names=names,
                         output_names=("output",), input_shapes=shapes)  # from the cached fp32 file
    assert half.details["weights"] == "fp16" and half.details["from_fp32_tflite"] == artifact.sha256
    assert half.path.is_relative_to(isolated) and half.input_names == artifact.input_names
    # int8 from the same fp32 file, calibrated on samples given in the graph's order and layout (NCHW)
    calibration = [(rng.random((3, 128, 128), dtype=np.float32), rng.standard_normal((1, 512)).astype("f4"))
                   for _ in range(4)]
    int8 = card_artifact(loaded.swapper_path, loaded.sha256["swapper"], "tflite", "int8", input_names=names,
                         output_names=("output",), input_shapes=shapes, calibration=calibration)
    assert int8.details["calibration_layout"] == {"target": "NHWC", "source": "as ONNX"}
    assert int8.details["calibration_samples"] == 4 and int8.details["io"].startswith("float32")
    # `device --adb` with a TFLite benchmark_model pushes that same cached fp32 file
    from mfsbench.device.card import phone_file
    from mfsbench.registry import get_spec

    card_license.accept_licenses()
    path, fmt, phone = phone_file(get_spec(str(card)), "benchmark_model")
    assert (path, fmt) == (artifact.path, "tflite") and phone["cache"].startswith("reused")
    assert phone_file(get_spec(str(card)), "ort")[0] == loaded.swapper_path


@pytest.mark.slow  # a conversion and a LiteRT cell in a fresh process: 25-35 s on 2 loaded cores
@pytest.mark.cli
def test_device_times_a_card_on_litert_with_parity(run_cli, tmp_path: Path, isolated: Path,
                                                      face_photos, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.small_peaks import use_small_peaks

    use_small_peaks(monkeypatch)  # the sweep's peaks on a small product: ~20 s less, no peak checked here
    _needs_converter()
    pytest.importorskip("ai_edge_quantizer")
    card = example_card(tmp_path / "models")
    out = tmp_path / "out"
    result = run_cli("device", "--models", str(card), "--backends", "litert", "--precision", "fp32",
                     "--accept-license", "--runs", "3", "--warmup", "1", "--min-seconds", "0",
                     "--peak-seconds", "0.2", "--out", str(out))
    assert result.code == 0, result.err
    (record,) = read_records(out / "records.jsonl")
    assert record.status == "ok", record.error
    assert record.info["format"] == "tflite" and record.info["parity_reference"].startswith("onnxruntime")
    assert record.info["export"]["converter"].startswith("onnx2tf 1.28.8")
    assert record.info["export"]["tensorflow"] == "2.21.0"
    assert record.info["io_layout"]["target"].startswith("NHWC [1, 128, 128, 3]")
    assert record.info["runtime_info"]["io_shapes"]["inputs"]["target"] == [1, 128, 128, 3]
    assert "the ONNX file the tflite file was converted from" in record.info["macs_source"]
    assert record.info["executed_precision"] == "fp32" and record.metrics["p50_ms"] > 0
    assert 0 <= record.metrics["max_abs_err"] <= 1e-4
    assert not any((tmp_path / "models").glob("*.tflite"))  # derivatives live in the cache only
    assert len(list(isolated.rglob("*.tflite"))) == 1


def test_without_the_extra_a_card_litert_cell_is_skipped_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from mfsbench.device import sweep
    from mfsbench.device.axis import plan_for
    from mfsbench.errors import MissingDependencyError
    from mfsbench.export import card_tflite

    monkeypatch.setattr(card_tflite, "missing_packages", lambda: ["onnx2tf", "tensorflow"])
    reason = sweep._card_plan(plan_for("litert", "fp32"))
    assert isinstance(reason, str) and "onnx2tf" in reason
    assert "pip install 'mfsbench[cards-tflite]'" in reason
    with pytest.raises(MissingDependencyError, match=r"mfsbench\[cards-tflite\]"):
        card_tflite.require_converter()


@pytest.mark.slow  # TensorFlow's start-up and the conversion: 10-15 s on 2 loaded cores
def test_an_opset_20_align_corners_upsample_converts_exactly(tmp_path: Path, isolated: Path) -> None:
    """onnx2tf 1.28.8 writes a half-pixel resize for Resize(align_corners) above opset 17 (0.37 off on
    such a graph, measured) and crashes on list-valued Constant nodes; the converter lowers the copy to
    opset 17 and folds its Constants first, so LiteRT matches ONNX."""
    _needs_converter()
    import onnx
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter
    from onnx import TensorProto, helper, numpy_helper

    from mfsbench.export.card import card_artifact

    # the scales as a list-valued Constant node, as torch exports them unoptimised (onnx2tf crashed on it)
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["scales"], value_floats=[1.0, 1.0, 2.0, 2.0]),
         helper.make_node("Resize", ["target", "", "scales"], ["resized"], mode="linear",
                          coordinate_transformation_mode="align_corners"),
         helper.make_node("Mul", ["resized", "gain"], ["output"])], "upsample",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 32, 32])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "gain")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    path = tmp_path / "upsample.onnx"
    onnx.save(model, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    artifact = card_artifact(path, digest, "tflite", "fp32", input_names=("target",),
                             output_names=("output",), input_shapes={"target": (1, 3, 16, 16)})
    assert "opset 20 → 17" in artifact.details["prepared"]
    assert "1 Constant node(s) made initializers" in artifact.details["prepared"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # the original is untouched
    x = np.random.default_rng(3).random((1, 3, 16, 16), dtype=np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"target": x})[0]
    runner = Interpreter(model_path=str(artifact.path)).get_signature_runner("serving_default")
    (got,) = runner(target=x.transpose(0, 2, 3, 1)).values()
    assert np.abs(got.transpose(0, 3, 1, 2) - want).max() <= 1e-4
