"""OpenVINO's own ``benchmark_app``, run as a cross-check of our harness, and its output parser.

The openvino wheel installs ``benchmark_app`` as a console script (the Python implementation).
Traps confirmed on 2026.4.1 (deployment notes §5), which :func:`benchmark_app_command` avoids:

* without ``-ip f32`` the input is fed as **u8**, which is not the model we time;
* ``-nthreads`` is rejected unless ``-hint none``; with a thread count we therefore pass
  ``-hint none -nstreams 1 -nthreads T`` (one stream = the latency configuration), and
  ``-hint latency`` only when no count is given;
* without ``-infer_precision f32`` the CPU plugin runs bf16 where it can.

Its statistics are median / average / min / max only (no raw samples), so its numbers are a
cross-check, never a replacement for :func:`mfsbench.device.timing.time_runtime`.

What it does with our timing settings (read from its 2026.4.1 source, ``tools/benchmark``):

* **warm-up**: one "first inference" before the measured loop, outside its statistics
  (``First inference took … ms``), or none with ``-no_warmup``. There is no option for N warm-up
  runs: a request for N ≥ 1 gets exactly one excluded run, and :func:`run_benchmark_app` records
  ``warmup_runs_excluded`` (read from the output) next to ``warmup_requested`` instead of claiming N;
* **duration**: the measured loop runs while ``iterations < -niter`` *or* ``elapsed < -t``, i.e.
  until *both* are reached, so ``-niter runs -t ceil(min_seconds)`` is our ``runs`` / ``min_seconds``
  rule (``-t`` takes whole seconds). It has no upper bound on time: ``max_seconds`` can only be the
  subprocess timeout;
* **precision**: ``-infer_precision`` sets ``INFERENCE_PRECISION_HINT``; what the compiled model
  answers is printed among its properties and parsed as ``inference_precision`` (on this AVX2-only
  CPU a ``bf16`` or ``f16`` request prints ``float32``), with ``INFERENCE_NUM_THREADS`` as the thread
  count it really used (``threads``) and ``RUNTIME_REQUIREMENTS``' ISA as ``runtime_isa``.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mfsbench.errors import BadInputError, MfsbenchError, MissingDependencyError
from mfsbench.optional import install_hint

_NUM = r"([0-9]+(?:\.[0-9]+)?)"
#: latencies under 1 ms are printed in microseconds ("956.01 us"); both are read as ms
_UNIT = r"(ms|us)\b"
_PATTERNS: dict[str, str] = {
    "read_model_ms": rf"Read model took\s+{_NUM}\s*ms",
    "compile_model_ms": rf"Compile model took\s+{_NUM}\s*ms",
    "first_inference_ms": rf"First inference took\s+{_NUM}\s*ms",
    "count": rf"Count:\s+{_NUM}\s+iterations",
    "duration_ms": rf"Duration:\s+{_NUM}\s*ms",
    "latency_median_ms": rf"Median:\s+{_NUM}\s*{_UNIT}",
    "latency_avg_ms": rf"Average:\s+{_NUM}\s*{_UNIT}",
    "latency_min_ms": rf"Min:\s+{_NUM}\s*{_UNIT}",
    "latency_max_ms": rf"Max:\s+{_NUM}\s*{_UNIT}",
    "throughput_fps": rf"Throughput:\s+{_NUM}\s*FPS",
    "num_threads": rf"INFERENCE_NUM_THREADS:\s+{_NUM}",
    "num_streams": rf"NUM_STREAMS:\s+{_NUM}",
}
_TEXT_PATTERNS: dict[str, str] = {
    "version": r"Build \.+\s+(\S+)",
    "inference_precision": r"INFERENCE_PRECISION_HINT:\s+<Type: '([^']+)'>",
    "performance_hint": r"PERFORMANCE_HINT:\s+(\S+)",
    "runtime_isa": r"RUNTIME_REQUIREMENTS:.*?isa=([^;\n]+)",
    "limits": r"Measuring performance \(.*?limits:\s*([^)]+)\)",
}
#: what ``-infer_precision`` takes, by the compute names of :mod:`mfsbench.device.axis` (int8 IRs
#: carry their own quantisers; the hint governs the float layers, as in the Python runtime)
INFER_PRECISIONS: dict[str, str] = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}


def parse_benchmark_app(text: str) -> dict[str, Any]:
    """Numbers from benchmark_app's console output (keys carry units; absent lines are absent).

    Latency lines are only searched after ``Latency:`` so ``Min``/``Max`` elsewhere cannot match.
    Percentile lines from ``-latency_percentile N`` become ``latency_pNN_ms``.
    """
    out: dict[str, Any] = {}
    latency_block = text.split("Latency:", 1)[1] if "Latency:" in text else ""
    for key, pattern in _PATTERNS.items():
        source = latency_block if key.startswith("latency_") else text
        match = re.search(pattern, source)
        if match:
            value = float(match.group(1))
            if match.lastindex == 2 and match.group(2) == "us":
                value /= 1000.0
            out[key] = int(value) if key in ("count", "num_threads", "num_streams") else value
    for key, pattern in _TEXT_PATTERNS.items():
        match = re.search(pattern, text)
        if match:
            out[key] = match.group(1)
    for pct, value, unit in re.findall(rf"(\d+)(?:th|st|nd|rd) percentile:\s+{_NUM}\s*{_UNIT}",
                                       latency_block):
        out[f"latency_p{pct}_ms"] = float(value) / (1000.0 if unit == "us" else 1.0)
    if "latency_median_ms" not in out:
        raise MfsbenchError(
            "benchmark_app output has no latency median; it probably failed — see its output."
        )
    return out


def find_benchmark_app() -> str | None:
    """The console script: next to this interpreter (a venv's bin/) first, then on PATH."""
    local = Path(sys.executable).parent / "benchmark_app"
    if local.exists():
        return str(local)
    return shutil.which("benchmark_app")


def infer_precision(precision: str) -> str:
    """``-infer_precision`` for a compute name (``fp32``…) or an OpenVINO type (``f32``, ``bf16``, ``f16``).

    Raises:
        BadInputError: anything else.
    """
    hint = INFER_PRECISIONS.get(precision, precision)
    if hint not in set(INFER_PRECISIONS.values()):
        raise BadInputError(
            f"benchmark_app cannot be asked for precision {precision!r}; choose one of "
            f"{', '.join(INFER_PRECISIONS)} (or f32, bf16, f16)"
        )
    return hint


def benchmark_app_command(
    exe: str,
    model: str | Path,
    niter: int = 100,
    threads: int | None = None,
    *,
    precision: str = "f32",
    device: str = "CPU",
    min_seconds: float | None = None,
    warmup: int = 1,
) -> list[str]:
    """The argument list (never a shell string) for one synchronous latency run.

    ``niter`` and ``min_seconds`` both bound the loop from below (module docstring); ``warmup`` 0
    passes ``-no_warmup``, any other count leaves the tool's one excluded first inference.
    """
    if niter < 1:
        raise BadInputError(f"niter must be >= 1, got {niter}.")
    if warmup < 0:
        raise BadInputError(f"warmup must be >= 0, got {warmup}.")
    cmd = [exe, "-m", str(model), "-d", device, "-api", "sync", "-niter", str(niter), "-ip", "f32"]
    cmd += ["-infer_precision", infer_precision(precision)]
    if min_seconds is not None and min_seconds > 0:
        cmd += ["-t", str(max(1, math.ceil(min_seconds)))]
    if warmup == 0:
        cmd += ["-no_warmup"]
    if threads is not None:
        cmd += ["-hint", "none", "-nstreams", "1", "-nthreads", str(threads)]
    else:
        cmd += ["-hint", "latency"]
    return cmd


def run_benchmark_app(
    model: str | Path,
    niter: int = 100,
    threads: int | None = None,
    precision: str = "f32",
    timeout_s: float = 600.0,
    *,
    min_seconds: float | None = None,
    warmup: int = 1,
) -> dict[str, Any]:
    """Run benchmark_app on an ONNX file or IR and return the parsed numbers plus the raw output.

    Besides :func:`parse_benchmark_app`'s keys: ``threads`` (the ``INFERENCE_NUM_THREADS`` it
    printed, absent when it printed none: never the request), ``requested_threads``,
    ``requested_precision`` (the ``-infer_precision`` passed), ``warmup_requested`` and
    ``warmup_runs_excluded`` (1 when it printed a first inference, else 0), ``command``, ``output``.

    Raises:
        MissingDependencyError: no benchmark_app (install ``openvino``).
        MfsbenchError: it failed, timed out or printed no latency.
    """
    exe = find_benchmark_app()
    if exe is None:
        raise MissingDependencyError(
            f"benchmark_app not found; it ships with the openvino wheel: {install_hint('openvino')}"
        )
    cmd = benchmark_app_command(exe, model, niter, threads, precision=precision, min_seconds=min_seconds,
                                warmup=warmup)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise MfsbenchError(f"benchmark_app ran past {timeout_s:.0f} s: {' '.join(cmd)}") from None
    text = done.stdout + done.stderr
    if done.returncode != 0:
        tail = text.strip().splitlines()[-1:] or ["no output"]
        raise MfsbenchError(f"benchmark_app exited with {done.returncode}: {tail[0]}")
    parsed = parse_benchmark_app(text)
    return {**parsed, **tool_settings(parsed, threads, cmd, warmup), "command": cmd, "output": text}


def tool_settings(parsed: dict[str, Any], threads: int | None, cmd: list[str], warmup: int) -> dict[str, Any]:
    """What the tool was asked and what it reports having done, for the record (see
    :func:`run_benchmark_app`); ``parsed`` is :func:`parse_benchmark_app`'s output."""
    out: dict[str, Any] = {
        "requested_threads": threads,
        "requested_precision": cmd[cmd.index("-infer_precision") + 1],
        "warmup_requested": warmup,
        "warmup_runs_excluded": int("first_inference_ms" in parsed),
    }
    if "num_threads" in parsed:
        out["threads"] = parsed["num_threads"]
    return out
