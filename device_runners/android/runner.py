"""Run exported models on one or more phones through adb and return one Record per model per device.

Per device: a unique run directory under ``/data/local/tmp`` receives the user's benchmark binary and
each model; the model's sha256 is checked on the device against the local file; a cool-down gate
(thermal status / battery temperature, with a timeout) runs before each model; the device state is
recorded before and after; the run directory is always removed. Devices run in parallel threads, and
a device that fails or vanishes yields error records while the others finish. Every device-side path
goes through ``shlex.quote``, so names with spaces or quotes cannot inject into the device shell.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_runners.android import info as device_info
from device_runners.android.adb import Adb, AdbError
from device_runners.android.parse import benchmark_model_settings, parse_benchmark_model, parse_ort_perf_test
from mfsbench.checkpoints.digest import sha256_file
from mfsbench.errors import BadInputError, MfsbenchError
from mfsbench.records import Record

COMMAND = "device-android"
DEVICE_TMP = "/data/local/tmp"
DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")
#: --gpu-precision values: what TFLite's GPU delegate is told (its own default is fp16)
GPU_PRECISIONS = ("fp32", "fp16")
#: what records say about output parity: the phone path times the exported file (its sha256 is
#: checked on the phone) but never compares the phone's outputs with PyTorch's
NO_PARITY = "not checked on device"
#: onnxruntime_perf_test has no warm-up option (it times one first inference, then the runs)
ORT_WARMUP = "not supported by the tool"
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
    gpu_precision: str = "fp32"  # TFLite GPU delegate only: fp32 passes --gpu_precision_loss_allowed=false
    affinity: str | None = None  # taskset hex mask, e.g. "f0" for the big cores
    cooldown_timeout_s: float = 120.0
    cooldown_poll_s: float = 5.0
    max_thermal_status: int = 0
    max_battery_c: float = 38.0
    run_timeout_s: float = 600.0

    def describe(self, binary: Path) -> dict[str, Any]:
        """What every record of a run stores (``info["phone_run"]``), so ``--resume`` can compare:
        the options that change a measurement, and the benchmark binary by content. A setting the tool
        is not given (the warm-up of onnxruntime_perf_test) is stored as such, not as a number."""
        tool = tool_of(binary)
        return {"threads": self.threads, "warmup": ORT_WARMUP if tool == "ort" else self.warmup,
                "runs": self.runs, "delegate": self.delegate, "precision": self.precision(tool),
                "affinity": self.affinity, "cooldown_timeout_s": self.cooldown_timeout_s,
                "max_thermal_status": self.max_thermal_status, "max_battery_c": self.max_battery_c,
                "benchmark_binary_sha256": sha256_file(binary)}

    def precision(self, tool: str) -> str:
        """The precision the tool is told to run the fp32 export in: fp32, or fp16 for TFLite's GPU
        delegate with ``--gpu-precision fp16`` (the delegate's own default, never left implicit here).
        CPU, XNNPACK and NNAPI run fp32: benchmark_model's fp16 options for them default to off."""
        return self.gpu_precision if tool == "tflite" and self.delegate == "gpu" else "fp32"

    def check(self, tool: str) -> None:
        """Refuse a combination the tool would not run as labelled, before any phone is touched."""
        if self.delegate not in DELEGATES:
            raise BadInputError(f"--delegate {self.delegate!r}: choose one of {', '.join(DELEGATES)}")
        if self.gpu_precision not in GPU_PRECISIONS:
            raise BadInputError(f"--gpu-precision {self.gpu_precision!r}: choose one of "
                                f"{', '.join(GPU_PRECISIONS)}")
        if tool == "ort" and self.delegate == "gpu":
            raise BadInputError("--delegate gpu with onnxruntime_perf_test: it has no GPU execution provider "
                                "on Android (it would run on the CPU); use --delegate cpu, xnnpack or nnapi, "
                                "or a TFLite benchmark_model for the GPU")
        if self.gpu_precision != "fp32" and not (tool == "tflite" and self.delegate == "gpu"):
            raise BadInputError(f"--gpu-precision {self.gpu_precision} applies only to --delegate gpu with "
                                "TFLite benchmark_model; the other delegates run the fp32 export in fp32")

    @staticmethod
    def options(described: dict[str, Any]) -> str:
        """Stored settings as the command-line options that produce them."""
        binary = str(described.get("benchmark_binary_sha256", "?"))[:12]
        return " ".join(f"{flag} {described.get(key)}" for key, flag in _OPTION_FLAGS) + \
            f" and a --benchmark-binary with sha256 {binary}…"


#: PhoneSettings.describe() keys → the option that sets them
_OPTION_FLAGS = (("threads", "--threads"), ("warmup", "--warmup"), ("runs", "--runs"),
                 ("delegate", "--delegate"), ("precision", "--gpu-precision"), ("affinity", "--affinity"),
                 ("cooldown_timeout_s", "--cooldown-timeout"), ("max_thermal_status", "--max-thermal-status"),
                 ("max_battery_c", "--max-battery-temp"))


def tool_of(binary: Path) -> str:
    """``ort`` for onnxruntime_perf_test, else ``tflite`` (benchmark_model and its variants)."""
    return "ort" if "onnxruntime" in binary.name or "perf_test" in binary.name else "tflite"


def tool_command(tool: str, binary: str, model: str, settings: PhoneSettings) -> list[str]:
    """Argument list of one timed run (device-side paths are quoted later, by ``shlex.join``).

    Refuses (:class:`BadInputError`) what the tool would not run as labelled: onnxruntime_perf_test
    has no GPU execution provider, so ``gpu`` is never silently turned into ``cpu``. onnxruntime_perf_test
    has no warm-up option either: ``settings.warmup`` is not passed and records say so.
    """
    settings.check(tool)
    if tool == "ort":
        argv = [binary, "-e", settings.delegate, "-m", "times", "-r", str(settings.runs), "-s", "-I",
                "-x", str(settings.threads), model]
    else:
        argv = [binary, f"--graph={model}", f"--num_threads={settings.threads}",
                f"--warmup_runs={settings.warmup}", f"--num_runs={settings.runs}"]
        if settings.delegate in ("xnnpack", "gpu", "nnapi"):
            argv.append(f"--use_{settings.delegate}=true")
        elif settings.delegate == "cpu":
            argv.append("--use_xnnpack=false")
        if settings.delegate == "gpu":  # the GPU delegate's own default is precision loss allowed (fp16)
            loss = "true" if settings.gpu_precision == "fp16" else "false"
            argv.append(f"--gpu_precision_loss_allowed={loss}")
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
    precision = settings.precision(tool)
    info = {**model.info, "serial": serial, "tool": tool, "backend": f"android-{tool}",
            "precision": precision, "precision_requested": precision,
            "precision_source": "requested",
            "delegate": settings.delegate, "threads": settings.threads,
            "warmup": ORT_WARMUP if tool == "ort" else settings.warmup,
            "affinity": settings.affinity, "size": model.size, "stage": "frame", "parity": NO_PARITY}
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
    _what_ran(tool, done.stdout, record)
    record.metrics["threads"] = float(settings.threads)
    record.info["state_after"] = device_info.state(adb)
    adb.shell(f"rm -f {shlex.quote(remote)}", check=False)


def _what_ran(tool: str, output: str, record: Record) -> None:
    """Precision (and delegate application) as the tool printed them, where it does.

    benchmark_model logs its GPU parameters ("Allow lower precision in gpu: [0]") and whether the
    delegate took the graph; a printed precision replaces the requested one, and a contradiction
    between the two is kept in the record. onnxruntime_perf_test prints neither.
    """
    requested = record.info["precision_requested"]
    said = benchmark_model_settings(output) if tool == "tflite" else {}
    if said.get("delegate_applied"):
        record.info["delegate_applied"] = said["delegate_applied"]
    if record.info.get("delegate") == "gpu" and "gpu_precision_loss_allowed" in said:
        printed = "fp16" if said["gpu_precision_loss_allowed"] else "fp32"
        record.info["precision"] = printed
        record.info["precision_source"] = (f"tool output (Allow lower precision in gpu: "
                                           f"[{int(said['gpu_precision_loss_allowed'])}])")
        if printed != requested:
            record.info["precision_mismatch"] = f"requested {requested}, the tool says it ran {printed}"
    else:
        record.info["precision_source"] = "requested (the tool's output does not say)"


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
    settings.check(tool)  # before the phone is touched
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


#: said on stderr when the first Ctrl-C reaches a phone run
STOPPING = ("\nmfsbench device --adb: interrupted; finishing the model in progress on each phone "
            "(Ctrl-C again to abandon it)\n")
#: said on stderr when a second Ctrl-C abandons it
ABANDONED = ("\nmfsbench device --adb: abandoned; the models in progress are lost and their run dirs "
             "may remain on the phones (adb -s SERIAL shell rm -rf /data/local/tmp/mfsbench-*)\n")


def _stop(stop: threading.Event) -> None:
    """First Ctrl-C: every phone finishes the model in progress, then cleans up."""
    if stop.is_set():
        sys.stderr.write(ABANDONED)
        sys.stderr.flush()
        raise KeyboardInterrupt
    stop.set()
    sys.stderr.write(STOPPING)
    sys.stderr.flush()


@contextlib.contextmanager
def _sigint_sets(stop: threading.Event) -> Iterator[None]:
    """While the phones run, SIGINT (Ctrl-C) sets ``stop`` instead of raising KeyboardInterrupt
    wherever the main thread happens to be; the second one raises it (abandon).

    Installed only from the main thread and only over Python's default handler, so a SIGINT the
    caller ignores stays ignored (a job started in the background) and a caller's own handler is
    kept (a KeyboardInterrupt it raises is handled by :func:`run_devices` the same way).
    """
    install = (threading.current_thread() is threading.main_thread()
               and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if install:
        signal.signal(signal.SIGINT, lambda _signum, _frame: _stop(stop))
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _join(threads: Sequence[threading.Thread]) -> None:
    """Wait for the device threads, polling: Python runs signal handlers only in the main thread,
    between bytecodes, and a signal may land on a worker thread, so a blocking join could miss it
    until the phones are done."""
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.2)


def run_devices(adb: Adb, plan: Mapping[str, Sequence[PhoneModel]], binary: Path, settings: PhoneSettings,
                on_record: Callable[[Record], None] | None = None) -> tuple[list[Record], bool]:
    """Each serial's models, devices in parallel: (records in serial then model order, whether Ctrl-C
    stopped it). ``on_record`` is called from the device threads, one record at a time (a lock
    serialises the calls), as each record is final.

    Worker threads cannot be interrupted, so Ctrl-C sets an event: each phone finishes the model in
    progress, cleans up and returns, and nothing measured is lost. The handler is in place before the
    first device thread starts, so there is no moment at which a Ctrl-C skips this. A second Ctrl-C
    abandons the run (KeyboardInterrupt; the device threads are daemons and die with the process).
    """
    settings.check(tool_of(binary))
    stop = threading.Event()
    lock = threading.Lock()
    results: dict[str, list[Record]] = {}
    failures: list[BaseException] = []

    def serialised(record: Record) -> None:
        if on_record is not None:
            with lock:
                on_record(record)

    def device(serial: str, models: Sequence[PhoneModel]) -> None:
        try:
            results[serial] = run_device(adb.for_serial(serial), models, binary, settings, stop=stop,
                                         on_record=serialised)
        except BaseException as exc:  # re-raised in the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=device, args=(serial, models), name=f"adb-{serial}", daemon=True)
               for serial, models in plan.items()]
    with _sigint_sets(stop):
        for thread in threads:
            thread.start()
        try:
            _join(threads)
        except KeyboardInterrupt:  # a caller's own SIGINT handler, or the second Ctrl-C
            _stop(stop)
            _join(threads)
    if failures:
        raise failures[0]
    return [record for serial in plan for record in results.get(serial, [])], stop.is_set()
