"""Run exported models on one or more phones through adb and return one Record per model per device.

Per device: a unique run directory under ``/data/local/tmp`` receives the user's benchmark binary and
each model; the model's sha256 is checked on the device against the local file; a cool-down gate
(thermal status / battery temperature, with a timeout) runs before each model; the device state is
recorded before and after; the run directory is always removed. Devices run in parallel threads, and
a device that fails or vanishes yields error records while the others finish. Every device-side path
goes through ``shlex.quote``, so names with spaces or quotes cannot inject into the device shell.
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_runners.android import info as device_info
from device_runners.android.adb import Adb, AdbError
from device_runners.android.parse import parse_benchmark_model, parse_ort_perf_test
from mfsbench.checkpoints.digest import sha256_file
from mfsbench.errors import MfsbenchError
from mfsbench.records import Record

COMMAND = "device-android"
DEVICE_TMP = "/data/local/tmp"
DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")
#: error of a model a Ctrl-C kept from running (the run stopped after the model in progress)
INTERRUPTED = "not run: interrupted (Ctrl-C) before this model started"


@dataclass(frozen=True)
class PhoneModel:
    """One exported model to time: registry name, local file and what the report shows beside it."""

    name: str
    path: Path
    size: int
    info: dict[str, Any]


@dataclass(frozen=True)
class PhoneSettings:
    threads: int = 4
    warmup: int = 1
    runs: int = 50
    delegate: str = "xnnpack"
    affinity: str | None = None  # taskset hex mask, e.g. "f0" for the big cores
    cooldown_timeout_s: float = 120.0
    cooldown_poll_s: float = 5.0
    max_thermal_status: int = 0
    max_battery_c: float = 38.0
    run_timeout_s: float = 600.0

    def describe(self, binary: Path) -> dict[str, Any]:
        """What every record of a run stores (``info["phone_run"]``), so ``--resume`` can compare:
        the options that change a measurement, and the benchmark binary by content."""
        return {"threads": self.threads, "warmup": self.warmup, "runs": self.runs, "delegate": self.delegate,
                "affinity": self.affinity, "cooldown_timeout_s": self.cooldown_timeout_s,
                "max_thermal_status": self.max_thermal_status, "max_battery_c": self.max_battery_c,
                "benchmark_binary_sha256": sha256_file(binary)}

    @staticmethod
    def options(described: dict[str, Any]) -> str:
        """Stored settings as the command-line options that produce them."""
        binary = str(described.get("benchmark_binary_sha256", "?"))[:12]
        return " ".join(f"{flag} {described.get(key)}" for key, flag in _OPTION_FLAGS) + \
            f" and a --benchmark-binary with sha256 {binary}…"


#: PhoneSettings.describe() keys → the option that sets them
_OPTION_FLAGS = (("threads", "--threads"), ("warmup", "--warmup"), ("runs", "--runs"),
                 ("delegate", "--delegate"), ("affinity", "--affinity"),
                 ("cooldown_timeout_s", "--cooldown-timeout"), ("max_thermal_status", "--max-thermal-status"),
                 ("max_battery_c", "--max-battery-temp"))


def tool_of(binary: Path) -> str:
    """``ort`` for onnxruntime_perf_test, else ``tflite`` (benchmark_model and its variants)."""
    return "ort" if "onnxruntime" in binary.name or "perf_test" in binary.name else "tflite"


def tool_command(tool: str, binary: str, model: str, settings: PhoneSettings) -> list[str]:
    """Argument list of one timed run (device-side paths are quoted later, by ``shlex.join``)."""
    if tool == "ort":
        ep = {"gpu": "cpu"}.get(settings.delegate, settings.delegate)
        argv = [binary, "-e", ep, "-m", "times", "-r", str(settings.runs), "-s", "-I",
                "-x", str(settings.threads), model]
    else:
        argv = [binary, f"--graph={model}", f"--num_threads={settings.threads}",
                f"--warmup_runs={settings.warmup}", f"--num_runs={settings.runs}"]
        if settings.delegate in ("xnnpack", "gpu", "nnapi"):
            argv.append(f"--use_{settings.delegate}=true")
        elif settings.delegate == "cpu":
            argv.append("--use_xnnpack=false")
    if settings.affinity:
        argv = ["taskset", settings.affinity, *argv]
    return argv


def cool_down(adb: Adb, settings: PhoneSettings) -> dict[str, Any]:
    """Wait until thermal status and battery temperature are under their limits, or the timeout."""
    start = time.monotonic()
    while True:
        now = device_info.state(adb)
        thermal, battery = now["thermal_status"], now["battery_temp_c"]
        hot = ((isinstance(thermal, int) and thermal > settings.max_thermal_status)
               or (isinstance(battery, float) and battery > settings.max_battery_c))
        waited = time.monotonic() - start
        if not hot or waited >= settings.cooldown_timeout_s:
            return {"waited_s": round(waited, 2), "reached": not hot, "thermal_status": thermal,
                    "battery_temp_c": battery, "gated_on": [k for k, v in (("thermal", thermal),
                                                            ("battery", battery)) if v != "unavailable"]}
        time.sleep(min(settings.cooldown_poll_s, max(0.0, settings.cooldown_timeout_s - waited)))


def _record(model: PhoneModel, serial: str, tool: str, settings: PhoneSettings) -> Record:
    info = {**model.info, "serial": serial, "tool": tool, "backend": f"android-{tool}",
            "precision": "fp32", "delegate": settings.delegate, "threads": settings.threads,
            "affinity": settings.affinity, "size": model.size, "stage": "frame"}
    return Record(COMMAND, model.name, stage="frame", mode="video", convention="paper",
                  input_shapes={"target": [1, 3, model.size, model.size]}, info=info)


def _run_model(adb: Adb, run_dir: str, binary: str, model: PhoneModel, *, tool: str,
               settings: PhoneSettings, record: Record) -> None:
    record.info["cooldown"] = cool_down(adb, settings)
    record.info["state_before"] = device_info.state(adb)
    remote = f"{run_dir}/{model.path.name}"
    adb.push(model.path, remote, timeout_s=max(adb.timeout_s, 120.0))
    local_sha = sha256_file(model.path)
    remote_sha = adb.shell(f"sha256sum {shlex.quote(remote)}").stdout.split()[:1]
    record.info["model_sha256"] = local_sha
    record.info["device_sha256"] = remote_sha[0] if remote_sha else "unavailable"
    if record.info["device_sha256"] != local_sha:
        raise AdbError(f"model on {adb.serial} differs from the exported file (sha256 "
                       f"{record.info['device_sha256'][:12]} vs {local_sha[:12]}); push was corrupted")
    argv = tool_command(tool, binary, remote, settings)
    record.info["device_command"] = shlex.join(argv)
    done = adb.shell(shlex.join(argv) + " 2>&1", timeout_s=settings.run_timeout_s, check=False)
    record.info["output_tail"] = done.stdout.strip().splitlines()[-12:]
    if done.returncode != 0 and not _reachable(adb):
        raise AdbError(f"{adb.serial} disconnected during the run of {model.name} "
                       f"(adb exit {done.returncode}); the other devices carry on")
    if done.returncode != 0:
        raise AdbError(f"{Path(binary).name} exited with {done.returncode} on {adb.serial}: "
                       + " | ".join(record.info["output_tail"][-3:])[:400])
    parse = parse_ort_perf_test if tool == "ort" else parse_benchmark_model
    record.metrics.update(parse(done.stdout))
    record.metrics["threads"] = float(settings.threads)
    record.info["state_after"] = device_info.state(adb)
    adb.shell(f"rm -f {shlex.quote(remote)}", check=False)


def run_device(adb: Adb, models: Sequence[PhoneModel], binary: Path, settings: PhoneSettings, *,
               stop: threading.Event | None = None,
               on_record: Callable[[Record], None] | None = None) -> list[Record]:
    """Every model on one device; errors become error records, and the run dir is always removed.

    Each record goes to ``on_record`` as soon as it is final (a model's run ended, or the phone
    failed before it), so a killed run keeps what it measured. ``stop`` (set on Ctrl-C) ends the
    device's run after the model in progress: the models not started get error records that say so,
    and the clean-up still runs. A clean-up that fails is said on stderr and in the records not yet
    handed over.
    """
    serial = adb.serial or "?"
    tool = tool_of(binary)
    records = [_record(model, serial, tool, settings) for model in models]
    handed: set[int] = set()

    def hand_over(record: Record) -> None:
        if id(record) not in handed:
            handed.add(id(record))
            if on_record is not None:
                on_record(record)

    run_dir = f"{DEVICE_TMP}/mfsbench-{uuid.uuid4().hex[:10]}"
    remote_binary = f"{run_dir}/{binary.name}"
    try:
        facts = device_info.identity(adb)
        for record in records:
            record.info["device"] = facts
            record.info["run_dir"] = run_dir
        adb.shell(f"mkdir -p {shlex.quote(run_dir)}")
        adb.push(binary, remote_binary, timeout_s=max(adb.timeout_s, 120.0))
        adb.shell(f"chmod 755 {shlex.quote(remote_binary)}")
        _run_models(adb, run_dir, remote_binary, models, records, tool=tool, settings=settings, stop=stop,
                    hand_over=hand_over)
    except (MfsbenchError, OSError) as exc:
        for record in records:
            if record.status == "ok" and not record.metrics:
                record.status, record.error = "error", str(exc).splitlines()[0]
    finally:
        try:
            removed = adb.shell(f"rm -rf {shlex.quote(run_dir)}", timeout_s=min(adb.timeout_s, 30.0))
            cleanup = f"removed {run_dir}" if removed.returncode == 0 else f"could not remove {run_dir}"
        except MfsbenchError as exc:
            cleanup = f"could not remove {run_dir} from {serial}: {exc}"
        if not cleanup.startswith("removed"):
            sys.stderr.write(f"mfsbench device --adb: {serial}: {cleanup}; remove it by hand "
                             f"(adb -s {serial} shell rm -rf {run_dir})\n")
        for record in records:
            if id(record) not in handed:
                record.info["cleanup"] = cleanup
                hand_over(record)
    return records


def _run_models(adb: Adb, run_dir: str, binary: str, models: Sequence[PhoneModel], records: list[Record],
                *, tool: str, settings: PhoneSettings, stop: threading.Event | None,
                hand_over: Callable[[Record], None]) -> None:
    """Each model in turn into its record, handed over when final; stops early when the phone is gone
    (the rest become error records saying so) or ``stop`` is set."""
    for index, (model, record) in enumerate(zip(models, records, strict=True)):
        if stop is not None and stop.is_set():
            for rest in records[index:]:
                rest.status, rest.error = "error", INTERRUPTED
            return
        try:
            _run_model(adb, run_dir, binary, model, tool=tool, settings=settings, record=record)
        except (MfsbenchError, OSError) as exc:
            record.status, record.error = "error", str(exc).splitlines()[0]
            if not _reachable(adb):
                gone = f"{adb.serial or '?'} unreachable after: {record.error}"
                for rest in records[index + 1:]:
                    rest.status, rest.error = "error", gone
                return
        hand_over(record)


def _reachable(adb: Adb) -> bool:
    try:
        return adb.shell("echo ok", timeout_s=min(adb.timeout_s, 15.0), check=False).stdout.strip() == "ok"
    except MfsbenchError:
        return False


def _gather(futures: list[Future[list[Record]]]) -> list[list[Record]]:
    """The futures' results, polling: Python runs a Ctrl-C handler only in the main thread, between
    bytecodes, and the signal may land on a worker thread, so a blocking ``result()`` could miss it."""
    while wait(futures, timeout=0.5).not_done:
        pass
    return [future.result() for future in futures]


def run_devices(adb: Adb, plan: Mapping[str, Sequence[PhoneModel]], binary: Path, settings: PhoneSettings,
                on_record: Callable[[Record], None] | None = None) -> tuple[list[Record], bool]:
    """Each serial's models, devices in parallel: (records in serial then model order, whether Ctrl-C
    stopped it). ``on_record`` is called from the device threads, one record at a time (a lock
    serialises the calls), as each record is final.

    Worker threads cannot be interrupted, so Ctrl-C (which reaches the main thread) sets an event:
    each phone finishes the model in progress, cleans up and returns, and nothing measured is lost.
    A second Ctrl-C while they finish abandons the run.
    """
    stop = threading.Event()
    lock = threading.Lock()

    def serialised(record: Record) -> None:
        if on_record is not None:
            with lock:
                on_record(record)

    with ThreadPoolExecutor(max_workers=max(1, len(plan))) as pool:
        futures = [pool.submit(run_device, adb.for_serial(serial), models, binary, settings, stop=stop,
                               on_record=serialised)
                   for serial, models in plan.items()]
        try:
            results = _gather(futures)
        except KeyboardInterrupt:
            stop.set()
            sys.stderr.write("\nmfsbench device --adb: interrupted; finishing the model in progress on "
                             "each phone (Ctrl-C again to abandon it)\n")
            results = _gather(futures)
    return [record for device_records in results for record in device_records], stop.is_set()
