"""``mfsbench device --adb`` end to end with the real adb client and loopback devices."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from tests.loopback_adb import adb_server, loopback, replay_binary  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.adb, pytest.mark.cli]
RECORDED = Path(__file__).parent / "data" / "adb" / "sample_benchmark_model_public_log.txt"
MODEL = "test_frame_only"


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_bad_input_exit_2(adb_server, loopback, run_cli, tmp_path: Path) -> None:  # noqa: F811
    missing = run_cli("device", "--adb", "--benchmark-binary", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert missing.code == 2 and "--benchmark-binary" in missing.err
    binary = replay_binary(tmp_path / "benchmark_model", RECORDED)
    none = run_cli("device", "--adb", "--models", MODEL, "--benchmark-binary", str(binary),
                   "--out", str(tmp_path))
    assert none.code == 2 and "no Android device attached" in none.err
    device = loopback()
    adb_server.connect(device.serial)
    unknown = run_cli("device", "--adb", "--serial", "R58M123", "--models", MODEL,
                      "--benchmark-binary", str(binary), "--out", str(tmp_path))
    assert unknown.code == 2 and "unknown or offline serial R58M123" in unknown.err
    assert f"attached: {device.serial}" in unknown.err


def test_one_device_report_and_clean_device(adb_server, loopback, run_cli, tmp_path: Path) -> None:  # noqa: F811
    """The tiny frame-only net: its TFLite export takes seconds where mobilefaceswap_224's took ~30 s
    (that export is tested by tests/test_export.py, a two-stage student's phone run by the Ctrl-C test)."""
    from mfsbench.records import read_records
    from mfsbench.report.device_android import render_markdown

    device = loopback()
    binary = replay_binary(tmp_path / "benchmark_model", RECORDED)
    out = tmp_path / "out dir"
    result = run_cli("device", "--adb", "--serial", device.serial, "--models", MODEL,
                     "--benchmark-binary", str(binary), "--threads", "4", "--affinity", "1", "--seed", "3",
                     "--out", str(out))
    assert result.code == 0, result.err
    (record,) = _records(out)
    assert record["status"] == "ok" and record["command"] == "device-android"
    # the phone ran the weights the record names (before: unseeded, and --seed/--checkpoint ignored)
    assert record["info"]["weights"] == "random, seed 3"
    assert record["info"]["phone_run"]["weights"] == {"seed": 3}
    assert record["metrics"]["p50_ms"] == pytest.approx(51.891)
    assert record["metrics"]["init_ms"] == pytest.approx(119.515)
    info = record["info"]
    assert info["device"]["model"] == "Loopback_phone" and info["device"]["soc"] == "MT6891"
    assert info["device_sha256"] == info["model_sha256"]  # the model on the phone was the exported one
    assert info["state_before"]["battery_temp_c"] == 31.2 and info["cooldown"]["reached"] is True
    assert info["device_command"].startswith("taskset 1 /data/local/tmp/mfsbench-")
    assert "--num_threads=4" in info["device_command"] and "--use_xnnpack=true" in info["device_command"]
    ran = [c for c in device.commands if "benchmark_model" in c and "--graph" in c]
    assert len(ran) == 1
    def cells_of(md: str, model: str) -> list[str]:
        row = next(line for line in md.splitlines() if line.startswith(f"| {model} |"))
        return [c.strip() for c in row.strip("|").split("|")]

    cells = cells_of((out / "device_android.md").read_text(), MODEL)
    assert cells[1:4] == [device.serial, "Loopback_phone", "MT6891"]
    assert "19.3" in cells and cells[-2] == "-"  # parsed FPS; the paper has no figure for this model
    (stored,) = read_records(out / "records.jsonl")
    stored.model = "mobilefaceswap_224"  # the same phone record as the student's: the paper's FPS beside
    student = cells_of(render_markdown([stored]), "mobilefaceswap_224")
    assert "19.3" in student and student[-2] == "25.6"
    csv_text = (out / "device_android.csv").read_text()
    assert csv_text.splitlines()[0].startswith("model,serial,device,soc")
    assert list((device.root / "data/local/tmp").iterdir()) == []  # nothing left on the device


def test_killed_device_gives_error_record_and_exit_1(adb_server, loopback, run_cli, tmp_path: Path) -> None:  # noqa: F811
    good, bad = loopback("good"), loopback("bad", kill_on=r"benchmark_model.*--graph")
    binary = replay_binary(tmp_path / "benchmark_model", RECORDED)
    out = tmp_path / "out"
    result = run_cli("device", "--adb", "--serial", good.serial, "--serial", bad.serial, "--models", MODEL,
                     "--benchmark-binary", str(binary), "--adb-timeout", "10", "--out", str(out))
    assert result.code == 1, result.err
    by_serial = {r["info"]["serial"]: r for r in _records(out)}
    assert by_serial[good.serial]["status"] == "ok"
    assert by_serial[good.serial]["metrics"]["mean_ms"] == pytest.approx(63.7432)
    assert by_serial[bad.serial]["status"] == "error"
    assert f"{bad.serial} disconnected during the run" in by_serial[bad.serial]["error"]
    run_dir = by_serial[bad.serial]["info"]["run_dir"]
    assert run_dir.startswith("/data/local/tmp/mfsbench-")
    assert f"{bad.serial}: could not remove {run_dir}" in result.err  # said, with the command that fixes it
    assert f"{good.serial}: could not remove" not in result.err
    assert f"error: {MODEL} on {bad.serial}" in result.err
    assert list((good.root / "data/local/tmp").iterdir()) == []


@pytest.fixture
def terminal_sigint() -> object:
    """SIGINT with Python's handler, as in a terminal, restored after the test. pytest started as a
    background job by a non-interactive shell inherits SIGINT *ignored*; then neither a Ctrl-C nor
    a test's SIGINT reaches the run at all (the failure seen on fresh machines: exit 0, not 130)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("terminal_sigint")
def test_ctrl_c_keeps_each_finished_model_and_resume_runs_the_rest(adb_server, loopback, run_cli,  # noqa: F811
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from device_runners.android import runner

    real_run_model, real_run_device = runner._run_model, runner.run_device
    out = tmp_path / "out"
    on_disk_while_second_ran: list[list[dict]] = []
    stops: list[threading.Event] = []
    models_started: list[str] = []

    def keep_stop(*args, stop: threading.Event | None = None, **kwargs):  # the event run_devices hands out
        assert stop is not None
        stops.append(stop)
        return real_run_device(*args, stop=stop, **kwargs)

    def ctrl_c_during_first_model(*args, **kwargs) -> None:
        models_started.append(kwargs["record"].model)
        if len(models_started) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: SIGINT to the process
            # synchronise on the event the main thread sets when it sees the SIGINT, so the model in
            # progress cannot end (and the next one cannot start) before the interrupt was handled
            assert stops[0].wait(timeout=300), "the SIGINT never reached the main thread"
        else:
            on_disk_while_second_ran.append(_records(out))
        real_run_model(*args, **kwargs)

    monkeypatch.setattr(runner, "run_device", keep_stop)
    monkeypatch.setattr(runner, "_run_model", ctrl_c_during_first_model)
    device = loopback()
    binary = replay_binary(tmp_path / "benchmark_model", RECORDED)
    # the model the resume exports again is the cheap one (seconds, not ~20 s of TFLite conversion)
    in_progress_model, missing_model = "test_mobilefaceswap", MODEL
    command = ("device", "--adb", "--serial", device.serial, "--models", in_progress_model, missing_model,
               "--benchmark-binary", str(binary), "--out", str(out))
    result = run_cli(*command)
    assert result.code == 130, result.err
    assert "finishing the model in progress" in result.err and "1 of 2" in result.err
    assert "--resume" in result.err
    first, second = _records(out)
    assert first["model"] == in_progress_model and first["status"] == "ok" and first["metrics"]["p50_ms"] > 0
    assert second["status"] == "error" and "interrupted" in second["error"]
    assert second["info"]["cleanup"].startswith("removed /data/local/tmp/mfsbench-")
    assert list((device.root / "data/local/tmp").iterdir()) == []  # cleaned up even when interrupted

    other = run_cli(*command, "--runs", "7", "--resume")
    assert other.code == 2 and f"cannot resume run {first['run_id']}" in other.err
    assert "--runs 20" in other.err and "--runs 7" in other.err

    ran_before = len([c for c in device.commands if "--graph" in c])
    resumed = run_cli(*command, "--resume")
    assert resumed.code == 0, resumed.err
    # only the model the interrupted run lacked ran, and it joined that run; the first was on disk
    # while the second ran (records are appended per model, not at the end)
    assert len([c for c in device.commands if "--graph" in c]) == ran_before + 1
    assert [r["model"] for r in on_disk_while_second_ran[-1]] == [in_progress_model, missing_model]
    *_, third = _records(out)
    assert third["model"] == missing_model and third["status"] == "ok"
    assert third["run_id"] == first["run_id"]
    md = (out / "device_android.md").read_text()
    assert "interrupted" not in md and md.count(f"| {device.serial} |") == 2

    again = run_cli(*command, "--resume")
    assert again.code == 0 and "measured already" in again.err
    assert len([c for c in device.commands if "--graph" in c]) == ran_before + 1
    assert run_cli(*command[:-1], str(tmp_path / "empty"), "--resume").code == 2


def test_phone_weights_follow_seed_and_checkpoint_as_on_the_desktop(tmp_path: Path) -> None:
    import argparse

    from device_runners.android.cli import phone_weights
    from mfsbench.errors import BadInputError
    from mfsbench.registry import get_spec

    student = [get_spec("mobilefaceswap_224")]
    assert phone_weights(argparse.Namespace(seed=7, checkpoint=[]), student).seed == 7
    official = phone_weights(argparse.Namespace(seed=0, checkpoint=["a.pdparams"]), student)
    assert official.seed is None and official.checkpoints == ("a.pdparams",)
    with pytest.raises(BadInputError, match="exactly one --models"):
        phone_weights(argparse.Namespace(seed=0, checkpoint=["a.pdparams"]),
                      [*student, get_spec("simswap_224")])
