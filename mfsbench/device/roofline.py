"""How close a model runs to this CPU's fp32 peak: achieved MAC/s ÷ measured peak MAC/s.

The peak is *measured*, not taken from a datasheet: a large square fp32 ``torch.matmul`` (n×n by
n×n, n³ MACs; oneDNN/MKL GEMM is the best-tuned kernel on the machine), after warm-up, with the
best timing taken as the peak (the least-disturbed run). It repeats for at least ``min_seconds``:
on a shared machine five runs in half a second can all land in a neighbour's burst, and an
under-measured peak shows up as model efficiencies above 1. Conv-heavy networks can
then be read against it: an efficiency of 0.05 means the network's kernels (depthwise convs,
upsampling, memory traffic) reach 5 % of what GEMM gets from the same cores and threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mfsbench.errors import BadInputError


@dataclass(frozen=True)
class PeakResult:
    """Measured peak multiply-accumulates per second and how they were measured."""

    macs_per_s: float
    method: str


def measure_peak_macs(
    threads: int | None = None, n: int = 2048, repeats: int = 5, warmup: int = 2, *,
    min_seconds: float = 2.0, max_repeats: int = 100,
) -> PeakResult:
    """Peak fp32 MAC/s from an n×n matmul: the best of at least ``repeats`` runs and ``min_seconds``
    (at most ``max_repeats`` runs); ``threads`` None = torch's."""
    import torch

    if n < 1 or repeats < 1 or warmup < 0:
        raise BadInputError(f"need n >= 1, repeats >= 1, warmup >= 0; got {n}, {repeats}, {warmup}.")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=gen)
        b = torch.randn(n, n, generator=gen)
        out = torch.empty(n, n)
        with torch.inference_mode():
            for _ in range(warmup):
                torch.matmul(a, b, out=out)
            best, runs, started = float("inf"), 0, time.perf_counter()
            while runs < max_repeats and (runs < repeats or time.perf_counter() - started < min_seconds):
                t0 = time.perf_counter()
                torch.matmul(a, b, out=out)
                best = min(best, time.perf_counter() - t0)
                runs += 1
            spent = time.perf_counter() - started
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    method = (
        f"torch {torch.__version__} fp32 matmul {n}x{n}x{n} ({n**3:.3g} MACs), "
        f"{used} threads, best of {runs} runs ({spent:.1f} s) after {warmup} warm-up"
    )
    return PeakResult(n**3 / best, method)


def achieved_macs_per_s(gmacs: float, latency_ms: float) -> float:
    """MAC/s a model achieves: its GMACs per inference over its latency."""
    if latency_ms <= 0 or gmacs < 0:
        raise BadInputError(f"need latency_ms > 0 and gmacs >= 0; got {latency_ms}, {gmacs}.")
    return gmacs * 1e9 / (latency_ms / 1000.0)


def efficiency(gmacs: float, latency_ms: float, peak_macs_per_s: float) -> float:
    """Fraction of the measured peak a model reaches (0..1, can exceed 1 for bf16/int8 runs)."""
    if peak_macs_per_s <= 0:
        raise BadInputError(f"peak MAC/s must be positive, got {peak_macs_per_s}.")
    return achieved_macs_per_s(gmacs, latency_ms) / peak_macs_per_s
