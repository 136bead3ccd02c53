"""A real Ctrl-C: SIGINT to the whole process group of ``mfsbench device --adb``, as a terminal sends it.

The in-process test (tests/test_adb_cli.py) signals only the Python process; a terminal signals every
process in the foreground group, the adb clients included. An adb client killed by it would end the
model in progress, which Ctrl-C is documented to let finish.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.loopback_adb import adb_server, loopback, replay_binary  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.adb, pytest.mark.cli]
RECORDED = Path(__file__).parent / "data" / "adb" / "sample_benchmark_model_public_log.txt"
ROOT = Path(__file__).resolve().parents[1]
#: the CLI as a terminal starts it: SIGINT with Python's handler even if this test run ignores it
CLI = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
       "from mfsbench.cli.main import main; sys.exit(main(sys.argv[1:]))")


def _held_binary(path: Path, started: Path, go: Path) -> Path:
    """The replayed benchmark_model, which says it started and then waits for ``go`` to exist: the
    test interrupts while a model is certainly in progress, and lets it end only once the CLI has
    said it saw the interrupt."""
    replay_binary(path, RECORDED)
    shebang, rest = path.read_text().split("\n", 1)
    path.write_text(f"{shebang}\n: > '{started}'\nwhile [ ! -e '{go}' ]; do sleep 0.05; done\n{rest}")
    return path


def test_sigint_to_the_process_group_lets_the_model_in_progress_finish(adb_server, loopback,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    device = loopback()
    started, go, out = tmp_path / "started", tmp_path / "go", tmp_path / "out"
    binary = _held_binary(tmp_path / "benchmark_model", started, go)
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "device", "--adb", "--serial", device.serial,
         # the second model is never timed, only exported: test_simswap's export is the cheaper one
         "--models", "test_frame_only", "test_simswap", "--benchmark-binary", str(binary),
         "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    err: list[str] = []
    seen = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            if "finishing the model in progress" in line:
                seen.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 600  # exports on a loaded 2-core machine; only a guard
        while not started.exists():  # the first model is running on the phone
            assert proc.poll() is None and time.monotonic() < deadline, "".join(err)
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: every process of the group
        assert seen.wait(timeout=300), "".join(err)
        go.touch()
        proc.wait(timeout=300)
    finally:
        go.touch()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(timeout=10)
    text = "".join(err)
    assert proc.returncode == 130, text
    first, second = (json.loads(line) for line in (out / "records.jsonl").read_text().splitlines())
    assert first["model"] == "test_frame_only" and first["status"] == "ok", first.get("error")
    assert first["metrics"]["p50_ms"] > 0
    assert second["status"] == "error" and second["error"].startswith("not run: interrupted")
    assert "1 of 2" in text and "--resume" in text
    assert len([c for c in device.commands if "--graph" in c]) == 1  # the second model never started
    assert list((device.root / "data/local/tmp").iterdir()) == []  # run dir removed after the Ctrl-C
