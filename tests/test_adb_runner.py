"""The runner alone (no export): hostile file names, onnxruntime_perf_test, report rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_runners.android.runner import PhoneModel, PhoneSettings, run_device, tool_command
from mfsbench.report import device_android
from tests.loopback_adb import adb_server, loopback, replay_binary  # noqa: F401  (fixtures)

pytestmark = pytest.mark.adb
DATA = Path(__file__).parent / "data" / "adb"


def test_quoted_paths_and_failed_tool(adb_server, loopback, tmp_path: Path) -> None:  # noqa: F811
    device = loopback()
    adb_server.connect(device.serial)
    adb = adb_server.for_serial(device.serial)
    hostile = tmp_path / "it's a $(touch pwned) model.tflite"
    hostile.write_bytes(b"\x00tflite bytes" * 100)
    binary = replay_binary(tmp_path / "benchmark_model", DATA / "sample_benchmark_model.txt")
    (record,) = run_device(adb, [PhoneModel("tiny", hostile, 32, {})], binary, PhoneSettings(runs=7))
    assert record.status == "ok", record.error
    assert record.metrics["p50_ms"] == pytest.approx(8.002) and record.metrics["threads"] == 4
    assert record.info["device_sha256"] == record.info["model_sha256"]
    assert not list(device.root.rglob("pwned")) and not list((device.root / "data/local/tmp").iterdir())
    # a tool that fails: its exit code and output become the error, and the device is still cleaned
    failing = tmp_path / "benchmark_model_broken"
    failing.write_text("#!/bin/sh\necho 'ERROR: Failed to apply XNNPACK delegate.' >&2\nexit 4\n")
    (broken,) = run_device(adb, [PhoneModel("tiny", hostile, 32, {})], failing, PhoneSettings())
    assert broken.status == "error"
    assert "exited with 4" in broken.error and "Failed to apply XNNPACK delegate" in broken.error
    assert not list((device.root / "data/local/tmp").iterdir())


def test_onnxruntime_perf_test_and_report(adb_server, loopback, tmp_path: Path) -> None:  # noqa: F811
    device = loopback(battery_temp_c10=395)
    adb_server.connect(device.serial)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx" * 64)
    binary = tmp_path / "onnxruntime_perf_test"
    binary.write_text("#!/bin/sh\nfor last in \"$@\"; do :; done\n[ -f \"$last\" ] || exit 2\n"
                      f"cat <<'EOF'\n{(DATA / 'onnxruntime_perf_test.txt').read_text()}EOF\n")
    settings = PhoneSettings(delegate="nnapi", threads=1, cooldown_timeout_s=0.5, cooldown_poll_s=0.1)
    (record,) = run_device(adb_server.for_serial(device.serial),
                           [PhoneModel("simswap_224", model, 224, {})], binary, settings)
    assert record.status == "ok", record.error
    assert record.info["device_command"].split()[1:5] == ["-e", "nnapi", "-m", "times"]
    assert record.metrics["mean_ms"] == pytest.approx(98.961997)
    assert record.info["cooldown"]["reached"] is False  # 39.5 °C > 38 °C limit; waited, then went on
    assert record.info["cooldown"]["waited_s"] >= 0.5
    csv_text = device_android.render_csv([record])
    assert csv_text.splitlines()[1].split(",")[-2] == "0.64"  # paper FPS, as reported
    assert json.loads(record.to_json())["info"]["tool"] == "ort"


def test_tflite_flags() -> None:
    argv = tool_command("tflite", "/data/local/tmp/x/bm", "/data/local/tmp/x/a b.tflite",
                        PhoneSettings(threads=2, warmup=3, runs=9, delegate="gpu", affinity="f0"))
    assert argv == ["taskset", "f0", "/data/local/tmp/x/bm", "--graph=/data/local/tmp/x/a b.tflite",
                    "--num_threads=2", "--warmup_runs=3", "--num_runs=9", "--use_gpu=true",
                    "--gpu_precision_loss_allowed=false"]  # fp32 unless --gpu-precision fp16
