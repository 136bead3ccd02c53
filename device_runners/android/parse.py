"""Parsers for the phone benchmark tools' text output (spec §10), into the desktop metric keys.

Numbers land under the names :mod:`mfsbench.device.timing` uses (``p50_ms``, ``mean_ms``, ``init_ms``,
``first_run_ms``...) in milliseconds, so phone and desktop records render with the same code. Only
what the tool printed is returned; a statistic it does not give (percentiles in old builds) stays
absent rather than being derived from something else.
"""

from __future__ import annotations

import re

from mfsbench.errors import MfsbenchError

_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_COUNT_LINE = re.compile(r"count=(\d+)((?:\s+\w+=" + _NUMBER + r")+)")
_PAIR = re.compile(r"(\w+)=(" + _NUMBER + ")")
_TIMINGS = re.compile(r"Inference timings in us:\s*(.*)")
_LEGACY = re.compile(r"Average inference timings in us:\s*(.*)")
_FIELD = re.compile(r"([A-Za-z][A-Za-z ()]*?):\s*(" + _NUMBER + ")")
#: benchmark_model's count= keys -> ours (values are microseconds)
_STAT_KEYS = {"min": "min_ms", "max": "max_ms", "avg": "mean_ms", "std": "std_ms", "p5": "p5_ms",
              "median": "p50_ms", "p95": "p95_ms", "first": "first_measured_ms"}


class ParseError(MfsbenchError):
    """The tool's output has none of the lines a result needs."""


def _fps(metrics: dict[str, float]) -> dict[str, float]:
    if metrics.get("p50_ms"):
        metrics["fps_p50"] = 1000.0 / metrics["p50_ms"]
    if metrics.get("mean_ms"):
        metrics["fps_mean"] = 1000.0 / metrics["mean_ms"]
    return metrics


def parse_benchmark_model(text: str) -> dict[str, float]:
    """TFLite/LiteRT ``benchmark_model`` output (stdout and stderr merged), current or pre-2020 format.

    The first ``count=`` line is the warm-up, the last the measured runs; the summary line gives init,
    first inference and the averages. Older builds print only
    ``Average inference timings in us: Warmup: W, Init: I, Inference: A``.
    """
    metrics: dict[str, float] = {}
    counts = [dict(_PAIR.findall(m.group(0))) for m in _COUNT_LINE.finditer(text)]
    if counts:
        measured = counts[-1]
        metrics["runs"] = float(measured["count"])
        for theirs, ours in _STAT_KEYS.items():
            if theirs in measured:
                metrics[ours] = float(measured[theirs]) / 1000.0
        if len(counts) > 1:
            metrics["warmup_runs"] = float(counts[0]["count"])
    summary = _TIMINGS.search(text)
    legacy = _LEGACY.search(text)
    fields = dict(_FIELD.findall((legacy or summary).group(1))) if (legacy or summary) else {}
    fields = {k.strip().lower(): float(v) / 1000.0 for k, v in fields.items()}
    if "init" in fields:
        metrics["init_ms"] = fields["init"]
    if "first inference" in fields:
        metrics["first_run_ms"] = fields["first inference"]
    for key in ("warmup (avg)", "warmup"):
        if key in fields:
            metrics["warmup_mean_ms"] = fields[key]
    for key in ("inference (avg)", "inference"):
        if key in fields:
            metrics.setdefault("mean_ms", fields[key])
    return _fps(_memory(text, metrics))


def _memory(text: str, metrics: dict[str, float]) -> dict[str, float]:
    """Model size and memory lines, then the check that a timing was found at all."""
    size = re.search(r"input model file size \(MB\):\s*(" + _NUMBER + ")", text)
    if size:
        metrics["model_size_mb"] = float(size.group(1))
    memory = re.search(r"Memory footprint delta .*?init=(" + _NUMBER + r") overall=(" + _NUMBER + ")", text)
    if memory:
        metrics["init_mem_mb"], metrics["overall_mem_mb"] = float(memory.group(1)), float(memory.group(2))
    peak = re.search(r"Overall peak memory footprint \(MB\)[^:]*:\s*(" + _NUMBER + ")", text)
    if peak:
        metrics["peak_mem_mb"] = float(peak.group(1))
    if "mean_ms" not in metrics:
        raise ParseError("benchmark_model output has no timing lines (no 'count=' or 'Inference timings'); "
                         "check that the binary ran the graph: " + _tail(text))
    return metrics


_GPU_PRECISION = re.compile(r"Allow lower precision in gpu\s*:\s*\[(\d)\]")
_APPLIED = re.compile(r"(?:Explicitly )?[Aa]pplied (\w+) delegate,? and the model graph will be "
                      r"(completely|partially) executed")


def benchmark_model_settings(text: str) -> dict[str, object]:
    """What benchmark_model says it was set to run, where its output says so.

    ``gpu_precision_loss_allowed`` (bool) from "Allow lower precision in gpu: [0|1]" (older builds put a
    space before the colon; the line is printed on Android when the GPU flags are given), and
    ``delegate_applied`` ("GPU delegate, completely executed") from "(Explicitly) applied GPU delegate,
    and the model graph will be completely|partially executed ...". Absent keys: the output did not say.
    """
    said: dict[str, object] = {}
    precision = _GPU_PRECISION.findall(text)
    if precision:
        said["gpu_precision_loss_allowed"] = precision[-1] == "1"
    applied = _APPLIED.findall(text)
    if applied:
        said["delegate_applied"] = "; ".join(f"{name} delegate, {how} executed" for name, how in applied)
    return said


_ORT_PATTERNS = {
    "init_ms": (r"Session creation time cost:\s*(" + _NUMBER + r")\s*s", 1000.0),
    "first_run_ms": (r"First inference time cost:\s*(" + _NUMBER + r")\s*ms", 1.0),
    "mean_ms": (r"Average inference time cost(?: total)?:\s*(" + _NUMBER + r")\s*ms", 1.0),
    "runs": (r"Total inference requests:\s*(\d+)", 1.0),
    "total_s": (r"Total inference run time:\s*(" + _NUMBER + r")\s*s", 1.0),
    "ips": (r"Number of inferences per second:\s*(" + _NUMBER + ")", 1.0),
    "cpu_usage_pct": (r"(?:Avg|Total) CPU usage:\s*(" + _NUMBER + ")", 1.0),
    "peak_working_set_mb": (r"Peak working set size:\s*(\d+)", 1.0 / (1024 * 1024)),
    "min_ms": (r"Min Latency:\s*(" + _NUMBER + r")\s*s", 1000.0),
    "max_ms": (r"Max Latency:\s*(" + _NUMBER + r")\s*s", 1000.0),
    "p50_ms": (r"P50 Latency:\s*(" + _NUMBER + r")\s*s", 1000.0),
    "p90_ms": (r"P90 Latency:\s*(" + _NUMBER + r")\s*s", 1000.0),
    "p95_ms": (r"P95 Latency:\s*(" + _NUMBER + r")\s*s", 1000.0),
    "p99_ms": (r"P99 Latency:\s*(" + _NUMBER + r")\s*s", 1000.0),
    "p999_ms": (r"P999 Latency:\s*(" + _NUMBER + r")\s*s", 1000.0),
}


def parse_ort_perf_test(text: str) -> dict[str, float]:
    """onnxruntime ``onnxruntime_perf_test`` output: average in ms, percentiles in seconds."""
    metrics = {}
    for key, (pattern, scale) in _ORT_PATTERNS.items():
        found = re.search(pattern, text)
        if found:
            metrics[key] = float(found.group(1)) * scale
    if "mean_ms" not in metrics:
        raise ParseError("onnxruntime_perf_test output has no 'Average inference time cost' line: "
                         + _tail(text))
    return _fps(metrics)


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[:300] or "(no output)"
