"""`mfsbench device` with a model card: the card's ONNX file timed on ONNX Runtime and OpenVINO.

The card's graph is built at test time (:mod:`tests.cards_fixtures`, inswapper_128's names and
shapes, 512×512 ``emap`` last), so no real weights are needed. What is checked: records name the
weights by the file's sha256 and the card, parity is taken against ONNX Runtime fp32 on the
original file within 1e-4, MACs are the card counter's, the licence is stamped; bad cards and a
missing consent are one line, exit 2; derivatives go to the per-user cache, never beside the card.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from mfsbench.cards.count import count_stages
from mfsbench.cards.graph import count_file
from mfsbench.cards.load import load_card
from mfsbench.records import Record, read_records
from tests.cards_fixtures import (
    INSWAPPER_LIKE_MACS,
    example_card,
    isolated_fixture,  # noqa: F401 - autouse: no consent, a per-test artefact cache
)
from tests.face_assets import face_photos_fixture  # noqa: F401
from tests.loopback_adb import adb_server, loopback  # noqa: F401  (fixtures)

ADB_DATA = Path(__file__).parent / "data" / "adb"


@pytest.mark.cli
def test_device_times_a_card_on_onnxruntime_and_openvino(run_cli, tmp_path: Path, isolated: Path, face_photos,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.small_peaks import use_small_peaks

    use_small_peaks(monkeypatch)  # the sweep's peaks (efficiency ≤ 1 is read against them) on a small product
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    folder = tmp_path / "models"
    card = example_card(folder)
    out = tmp_path / "out"
    # LiteRT is asked for only where a card cannot have it (no onnx2tf): then it must be a skipped cell
    # naming the converter. Where onnx2tf is installed a card's LiteRT cell converts and times the graph
    # (~35 s on 2 loaded cores), which is the card-to-TFLite tests' subject, not this one's.
    litert = () if importlib.util.find_spec("onnx2tf") else ("litert",)
    result = run_cli("device", "--models", str(card), "--backends", "onnxruntime", "openvino", *litert,
                     "torch-eager", "--precision", "fp32", "--accept-license", "--runs", "3", "--warmup", "1",
                     "--min-seconds", "0", "--peak-seconds", "0.2", "--out", str(out))
    assert result.code == 0, result.err
    records = read_records(out / "records.jsonl")
    cells = {r.info["backend"]: r for r in records}
    digest = hashlib.sha256((folder / "inswapper_128.onnx").read_bytes()).hexdigest()
    macs = count_stages(load_card(card))["frame"][0].macs
    assert macs == INSWAPPER_LIKE_MACS  # the counter itself, checked by hand in tests/cards_fixtures.py
    for backend in ("onnxruntime", "openvino"):
        record = cells[backend]
        assert record.status == "ok", record.error
        assert record.model == "inswapper_128" and record.info["precision"] == "fp32"
        assert record.info["weights"] == f"sha256 {digest}, card {card}"
        assert record.info["artifact_sha256"] == digest  # the user's file itself ran, no export step
        assert record.info["license"] == "LicenseRef-InsightFace-NonCommercial"
        assert record.info["files"]["swapper"]["verified"] is True
        assert record.info["parity_reference"].startswith("onnxruntime fp32")
        assert 0 <= record.metrics["max_abs_err"] <= 1e-4
        assert record.info["executed_precision"] == "fp32"
        assert record.info["macs_executed"] == macs and record.metrics["gmacs"] == pytest.approx(macs / 1e9)
        assert record.info["macs_source"].endswith(f"{folder / 'inswapper_128.onnx'}, which ran")
        assert "seed 0" in record.info["identity_input"] and "held out" in record.info["parity_inputs"]
        assert record.input_shapes == {"target": [1, 3, 128, 128], "source": [1, 512]}
        assert record.metrics["p50_ms"] > 0 and record.metrics["efficiency"] <= 1.0
    if litert:
        assert cells["litert"].status == "skipped" and "onnx2tf" in (cells["litert"].error or "")
    eager = cells["torch-eager"]
    assert eager.status == "skipped" and "no torch module" in (eager.error or "")
    # fp32 needs no derivative: nothing was written beside the card or into the cache
    assert sorted(p.name for p in folder.iterdir()) == ["inswapper_128.onnx", "inswapper_128.toml"]
    assert not isolated.exists() or not any(isolated.rglob("*.onnx"))


def test_card_derivatives_go_to_the_cache_and_are_reused(tmp_path: Path, isolated: Path) -> None:
    """ORT int8 (QDQ) and OpenVINO fp16-weights of the card's file land in the per-user cache."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    from mfsbench.export.card import card_artifact

    folder = tmp_path / "models"
    card = example_card(folder)
    loaded = load_card(card)
    rng = np.random.default_rng(1)
    calibration = [(rng.random((3, 128, 128), dtype=np.float32), rng.standard_normal((1, 512)).astype("f4"))
                   for _ in range(4)]
    names, outputs = ("target", "source"), ("output",)
    made = {}
    for fmt, precision in (("onnx", "int8"), ("openvino", "fp16")):
        artifact = card_artifact(loaded.swapper_path, loaded.sha256["swapper"], fmt, precision,
                                 input_names=names, output_names=outputs,
                                 calibration=calibration if precision == "int8" else None)
        assert artifact.path.is_relative_to(isolated), artifact.path
        assert loaded.sha256["swapper"][:16] in str(artifact.path)
        assert artifact.details["cache"].startswith("written to")
        made[fmt] = artifact
    assert made["onnx"].details["format"] == "QDQ" and made["openvino"].details["weights"] == "fp16"
    # the QDQ graph that an int8 cell runs has the card's matrix MACs (what its efficiency divides)
    assert count_file(made["onnx"].path, loaded.static_inputs()).macs == INSWAPPER_LIKE_MACS
    assert (made["openvino"].path.with_suffix(".bin")).is_file()
    again = card_artifact(loaded.swapper_path, loaded.sha256["swapper"], "onnx", "int8", input_names=names,
                          output_names=outputs, calibration=calibration)
    assert again.path == made["onnx"].path and again.details["cache"].startswith("reused")
    assert sorted(p.name for p in folder.iterdir()) == ["inswapper_128.onnx", "inswapper_128.toml"]
    fp32 = card_artifact(loaded.swapper_path, loaded.sha256["swapper"], "openvino", "fp32",
                         input_names=names, output_names=outputs)
    assert fp32.path == loaded.swapper_path  # OpenVINO reads the card's ONNX file directly


@pytest.mark.cli
@pytest.mark.parametrize(
    ("sha", "flags", "needle"),
    [
        ("0" * 64, ("--accept-license",), "does not match `files.swapper.sha256`"),
        (None, ("--accept-license",), "`files.swapper.sha256` is missing"),
        ("auto", (), "--accept-license"),
    ],
)
def test_device_refuses_bad_cards_in_one_line(run_cli, tmp_path: Path, sha: str | None,
                                              flags: tuple[str, ...], needle: str) -> None:
    card = example_card(tmp_path / "models", sha=sha)
    result = run_cli("device", "--models", str(card), "--backends", "onnxruntime", "--precision", "fp32",
                     *flags, "--out", str(tmp_path / "out"))
    assert result.code == 2, result.err
    assert needle in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "records.jsonl").exists()


#: Each fake phone tool: how it finds the model file it was given (it must exist on the phone, else
#: exit 2), and the real tool's output it prints (``tests/data/adb``)
_FAKE_TOOLS = {
    "benchmark_model": ('for arg in "$@"; do case $arg in --graph=*) f=${arg#--graph=};; esac; done\n',
                        "sample_benchmark_model.txt"),
    "onnxruntime_perf_test": ('for f in "$@"; do :; done\n', "onnxruntime_perf_test.txt"),  # model last
}


def _card_on_fake_phone(run_cli, device, card: Path, tmp_path: Path, tool: str) -> Record:
    """``device --adb`` of ``card`` on the loopback phone with the fake ``tool`` (:data:`_FAKE_TOOLS`);
    the run's one record."""
    find_model, sample = _FAKE_TOOLS[tool]
    binary = tmp_path / tool
    binary.write_text(f"#!/bin/sh\n{find_model}[ -f \"$f\" ] || exit 2\n"
                      f"cat <<'EOF'\n{(ADB_DATA / sample).read_text()}EOF\n")
    binary.chmod(0o755)
    out = tmp_path / "out"
    result = run_cli("device", "--adb", "--serial", device.serial, "--models", str(card),
                     "--benchmark-binary", str(binary), "--accept-license", "--out", str(out))
    assert result.code == 0, result.err
    (record,) = read_records(out / "records.jsonl")
    return record


@pytest.mark.cli
def test_device_adb_refuses_a_card_under_a_tflite_binary_without_the_converter(
        run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the cards-tflite extra (simulated: it is installed by `make install`) a TFLite
    benchmark_model cannot take a card: one line naming the extra and the ONNX alternative."""
    from mfsbench.export import card_tflite

    reason = "converting a card to TFLite needs onnx2tf: pip install 'mfsbench[cards-tflite]'"
    monkeypatch.setattr(card_tflite, "missing_reason", lambda: reason)
    card = example_card(tmp_path / "models")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    result = run_cli("device", "--adb", "--models", str(card), "--benchmark-binary", str(binary),
                     "--accept-license", "--out", str(tmp_path / "out"))
    assert result.code == 2, result.err
    assert "cards-tflite" in result.err and "onnxruntime_perf_test" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.adb
@pytest.mark.cli
def test_device_adb_pushes_a_cards_tflite_conversion_to_benchmark_model(adb_server, loopback,  # noqa: F811
                                                                        run_cli, tmp_path: Path) -> None:
    """With the cards-tflite extra, a TFLite benchmark_model times the card's onnx2tf conversion: the
    phone holds that very file (sha256), and the record names the converter and the card's licence."""
    from mfsbench.export.card import no_tflite_reason

    if no_tflite_reason() is not None:
        pytest.skip(no_tflite_reason())
    record = _card_on_fake_phone(run_cli, loopback(), example_card(tmp_path / "models"), tmp_path,
                                 "benchmark_model")
    assert record.status == "ok" and record.info["tool"] == "tflite" and record.info["format"] == "tflite"
    assert record.info["model_sha256"] == record.info["device_sha256"]  # the converted file ran
    assert "onnx2tf" in str(record.info["export"])
    assert record.info["license"] == "LicenseRef-InsightFace-NonCommercial"


@pytest.mark.adb
@pytest.mark.cli
def test_device_adb_pushes_a_cards_onnx_to_onnxruntime_perf_test(adb_server, loopback, run_cli,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    folder = tmp_path / "models"
    card = example_card(folder)
    digest = hashlib.sha256((folder / "inswapper_128.onnx").read_bytes()).hexdigest()
    record = _card_on_fake_phone(run_cli, loopback(), card, tmp_path, "onnxruntime_perf_test")
    assert record.status == "ok" and record.model == "inswapper_128"
    assert record.info["model_sha256"] == digest == record.info["device_sha256"]  # the user's file ran
    assert record.info["weights"] == f"sha256 {digest}, card {card}"
    assert record.info["license"] == "LicenseRef-InsightFace-NonCommercial" and record.info["tool"] == "ort"


def test_card_inputs_follow_the_card_and_a_whole_graph_says_so(tmp_path: Path) -> None:
    """The target tensor is the card's pixel spec applied to a BGR crop; the identity vector is seeded,
    L2-normalised for post_norm = l2, and a non-separable card's sentence says it is timed whole."""
    np = pytest.importorskip("numpy")
    from mfsbench.cards.spec import resolve
    from mfsbench.device.card import card_inputs, identity_vector

    card = example_card(tmp_path / "models")
    text = card.read_text().replace('pixel = { color = "RGB", scale = 255.0, mean = [0.0, 0.0, 0.0], '
                                    'std = [1.0, 1.0, 1.0] }',
                                    'pixel = { color = "BGR", scale = 127.5, mean = [1.0, 1.0, 1.0], '
                                    'std = [0.5, 0.5, 0.5] }')
    assert text != card.read_text()
    card.write_text(text.replace("separable = true", "separable = false"))
    spec = resolve(str(card), check_license=False)
    vector, sentence = identity_vector(spec)
    again, _ = identity_vector(spec)
    assert vector.shape == (1, 512) and np.array_equal(vector, again)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    assert "seed 0" in sentence and "not separable" in sentence and "timed as a whole" in sentence
    crop = np.zeros((128, 128, 3), np.uint8)
    crop[..., 0] = 255  # blue in BGR
    (sample,) = card_inputs(spec, [crop], vector)
    target, source = sample
    assert target.shape == (3, 128, 128) and source is vector
    # BGR order kept: channel 0 is blue = 255 → (255/127.5 − 1)/0.5 = 2; the others (0 − 1)/0.5 = −2
    assert target[0].min() == pytest.approx(2.0) and target[1].max() == pytest.approx(-2.0)
