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
"""

from __future__ import annotations

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
}


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


def benchmark_app_command(
    exe: str,
    model: str | Path,
    niter: int = 100,
    threads: int | None = None,
    *,
    precision: str = "f32",
    device: str = "CPU",
) -> list[str]:
    """The argument list (never a shell string) for one synchronous latency run."""
    if niter < 1:
        raise BadInputError(f"niter must be >= 1, got {niter}.")
    cmd = [exe, "-m", str(model), "-d", device, "-api", "sync", "-niter", str(niter), "-ip", "f32"]
    cmd += ["-infer_precision", precision]
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
) -> dict[str, Any]:
    """Run benchmark_app on an ONNX file or IR and return the parsed numbers plus the raw output.

    Raises:
        MissingDependencyError: no benchmark_app (install ``openvino``).
        MfsbenchError: it failed, timed out or printed no latency.
    """
    exe = find_benchmark_app()
    if exe is None:
        raise MissingDependencyError(
            f"benchmark_app not found; it ships with the openvino wheel: {install_hint('openvino')}"
        )
    cmd = benchmark_app_command(exe, model, niter, threads, precision=precision)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise MfsbenchError(f"benchmark_app ran past {timeout_s:.0f} s: {' '.join(cmd)}") from None
    text = done.stdout + done.stderr
    if done.returncode != 0:
        tail = text.strip().splitlines()[-1:] or ["no output"]
        raise MfsbenchError(f"benchmark_app exited with {done.returncode}: {tail[0]}")
    parsed = parse_benchmark_app(text)
    parsed["command"] = cmd
    parsed["output"] = text
    return parsed
