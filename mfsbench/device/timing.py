"""A latency harness whose numbers can be trusted and recomputed.

Protocol (the common ground of benchmark_model, onnxruntime_perf_test and benchmark_app, research
notes §4):

1. *init* = the runtime's ``prepare`` (session creation, compilation), timed apart by
   :func:`timed_prepare`, because GPU delegates and compilers can spend seconds here.
2. *first run* = the first inference, reported apart (onnxruntime#10676: it is often far slower).
3. ``warmup`` further runs, discarded.
4. Measured runs until **both** ``min_runs`` runs and ``min_seconds`` have passed, or until
   ``max_seconds`` has passed (then ``capped`` is set; if fewer than ``min_runs`` ran, so is
   ``too_few_runs``), which keeps slow models bounded and fast ones statistically useful.

Every sample (ms) is kept, so statistics are recomputed in Python for every tool alike. Only
``time.perf_counter`` is used (monotonic, highest resolution); the clock is injectable for tests.

Percentiles use numpy's default linear interpolation between order statistics. ``std`` is the
sample standard deviation (ddof=1). The run is flagged ``unstable`` when the coefficient of
variation std/mean exceeds :data:`UNSTABLE_CV` = 10 %: on an idle desktop CPU, repeated runs of one
model stay within a few percent, so above 10 % something else (frequency scaling, other processes,
thermal throttling) is in the numbers and the median should not be quoted without a re-run.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mfsbench.device.runtimes.base import Prepared, Runtime
from mfsbench.errors import BadInputError

#: Coefficient of variation above which a timing is flagged unstable (see module docstring).
UNSTABLE_CV = 0.10


@dataclass
class StageTimer:
    """Wall-clock seconds and calls per pipeline stage (``perf_counter``), summed.

    One timer for every per-stage account: the swap pipeline's (mean ms per call, time split) and
    the quality runner's (per work item, stored so a resumed run keeps its timings). Totals and
    counts are all either needs, so individual calls are not kept.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)

    def add(self, stage: str, seconds: float, calls: int = 1) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.calls[stage] = self.calls.get(stage, 0) + calls

    def merge(self, other: StageTimer, skip: Iterable[str] = ()) -> None:
        """Add ``other``'s totals to this one, except the stages in ``skip``."""
        skipped = set(skip)
        for stage, (seconds, calls) in other.items().items():
            if stage not in skipped:
                self.add(stage, seconds, calls)

    def copy(self) -> StageTimer:
        return StageTimer(dict(self.seconds), dict(self.calls))

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def items(self) -> dict[str, tuple[float, int]]:
        """``{stage: (seconds, calls)}``: what the quality store keeps per work item."""
        return {stage: (self.seconds[stage], self.calls[stage]) for stage in self.seconds}

    def total_s(self) -> dict[str, float]:
        return dict(self.seconds)

    def mean_ms(self) -> dict[str, float]:
        return {stage: 1000 * self.seconds[stage] / self.calls[stage]
                for stage in self.seconds if self.calls[stage]}


@dataclass(frozen=True)
class LatencyStats:
    """Statistics of measured latencies in milliseconds."""

    runs: int
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    cv: float
    unstable: bool
    fps_p50: float
    fps_mean: float


def latency_stats(samples_ms: Sequence[float], unstable_cv: float = UNSTABLE_CV) -> LatencyStats:
    """Pure statistics of ``samples_ms``; the only place numbers are derived from samples."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise BadInputError("no latency samples to summarise; run at least once.")
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    p50, p90, p95, p99 = (float(v) for v in np.percentile(a, [50, 90, 95, 99]))
    cv = std / mean if mean > 0 else 0.0
    return LatencyStats(
        runs=int(a.size),
        mean_ms=mean,
        std_ms=std,
        min_ms=float(a.min()),
        max_ms=float(a.max()),
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        cv=cv,
        unstable=cv > unstable_cv,
        fps_p50=1000.0 / p50 if p50 > 0 else float("inf"),
        fps_mean=1000.0 / mean if mean > 0 else float("inf"),
    )


@dataclass
class TimingResult:
    """Everything one timing produced; ``metrics()`` gives the unit-suffixed numbers for a Record."""

    stats: LatencyStats
    samples_ms: list[float]
    first_run_ms: float
    init_ms: float | None
    warmup_runs: int
    duration_s: float
    capped: bool
    too_few_runs: bool
    peak_rss_mb: float
    rss_mb: float | None
    os_threads: int | None
    threads: int | None
    settings: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for ``Record.metrics`` (booleans as 0/1, absent values left out)."""
        out: dict[str, float] = {
            k: float(v) for k, v in asdict(self.stats).items() if not isinstance(v, bool)
        }
        out["unstable"] = float(self.stats.unstable)
        out["first_run_ms"] = self.first_run_ms
        out["warmup_runs"] = float(self.warmup_runs)
        out["duration_s"] = self.duration_s
        out["capped"] = float(self.capped)
        out["too_few_runs"] = float(self.too_few_runs)  # a capped cell with fewer runs than asked
        out["peak_rss_mb"] = self.peak_rss_mb
        for key in ("init_ms", "rss_mb", "os_threads", "threads"):
            value = getattr(self, key)
            if value is not None:
                out[key] = float(value)
        return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB).

    ``ru_maxrss`` is a lifetime high-water mark: it includes everything the process did before,
    so per-model peaks need one process per model. Linux reports KiB, macOS bytes.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _rss_and_threads() -> tuple[float | None, int | None]:
    """Current RSS (MiB) and OS thread count via psutil when installed, else /proc."""
    try:
        import psutil

        proc = psutil.Process()
        return proc.memory_info().rss / 2**20, proc.num_threads()
    except ImportError:
        pass
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        rss = float(fields["VmRSS"].split()[0]) / 1024
        return rss, int(fields["Threads"])
    except (OSError, KeyError, ValueError):
        return None, None


def timed_prepare(
    runtime: Runtime, artifact: Any, threads: int, clock: Callable[[], float] = time.perf_counter
) -> tuple[Prepared, float]:
    """``runtime.prepare`` and its wall time in ms (the *init* time)."""
    start = clock()
    prepared = runtime.prepare(artifact, threads)
    return prepared, (clock() - start) * 1000.0


def time_runtime(  # noqa: PLR0917 - the positional order is the documented API
    prepared: Prepared,
    inputs: dict[str, Any],
    warmup: int = 3,
    min_runs: int = 20,
    min_seconds: float = 2.0,
    max_seconds: float = 60.0,
    *,
    init_ms: float | None = None,
    threads: int | None = None,
    unstable_cv: float = UNSTABLE_CV,
    clock: Callable[[], float] = time.perf_counter,
) -> TimingResult:
    """Time ``prepared.run(inputs)`` by the protocol in the module docstring.

    ``max_seconds`` bounds the measured phase only (not the first run or warm-up).
    """
    if warmup < 0 or min_runs < 1 or min_seconds < 0 or max_seconds <= 0:
        raise BadInputError(
            "need warmup >= 0, min_runs >= 1, min_seconds >= 0 and max_seconds > 0; "
            f"got {warmup}, {min_runs}, {min_seconds}, {max_seconds}."
        )
    if max_seconds < min_seconds:
        raise BadInputError(f"max_seconds ({max_seconds}) is below min_seconds ({min_seconds}).")
    run = prepared.run
    t0 = clock()
    run(inputs)
    first_run_ms = (clock() - t0) * 1000.0
    for _ in range(warmup):
        run(inputs)

    samples: list[float] = []
    capped = False
    start = clock()
    while True:
        t0 = clock()
        run(inputs)
        t1 = clock()
        samples.append((t1 - t0) * 1000.0)
        elapsed = t1 - start
        if len(samples) >= min_runs and elapsed >= min_seconds:
            break
        if elapsed >= max_seconds:
            capped = True
            break
    duration_s = clock() - start
    rss, os_threads = _rss_and_threads()
    return TimingResult(
        stats=latency_stats(samples, unstable_cv),
        samples_ms=samples,
        first_run_ms=first_run_ms,
        init_ms=init_ms,
        warmup_runs=warmup,
        duration_s=duration_s,
        capped=capped,
        too_few_runs=len(samples) < min_runs,
        peak_rss_mb=peak_rss_mb(),
        rss_mb=rss,
        os_threads=os_threads,
        threads=threads if threads is not None else prepared.info.get("threads"),
        settings={
            "warmup": warmup,
            "min_runs": min_runs,
            "min_seconds": min_seconds,
            "max_seconds": max_seconds,
            "unstable_cv": unstable_cv,
        },
    )
