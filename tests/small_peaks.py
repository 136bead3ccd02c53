"""Roofline peaks on a small product, for tests that run desktop sweeps but check no peak's size.

A fresh sweep measures this machine's peaks before its first cell: every kernel for fp32, bf16 and int8
on a 2048³ product after 2 warm-up runs, ~20 s of a 2-core machine per process. The sweep tests check
where peaks are measured (the driver or the node), that a run stores them and a resume reuses them, and
that a cell's efficiency is read against them; the same kernels at :data:`SMALL_N` check all of that.
The kernels, the sizes and the timing loop are tested by tests/test_roofline.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

#: the product's size here (the probe size of measure_peaks: no probing, every kernel timed at it)
SMALL_N = 256


def _small(real: Callable[..., Any], n: int) -> Callable[..., Any]:
    def measure_small_peaks(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("n", n)
        return real(*args, **kwargs)

    return measure_small_peaks


def use_small_peaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Peaks measured in this process (a local sweep, local engine units) are measured at SMALL_N.

    The engine's per-process memo is the test's own too: local units measure their peaks here rather
    than take another test's, and no later test takes these."""
    from mfsbench import engine
    from mfsbench.device import roofline

    monkeypatch.setattr(roofline, "measure_peaks", _small(roofline.measure_peaks, SMALL_N))
    monkeypatch.setattr(engine, "_MEMO", {})


def small_peaks_worker_hook() -> Callable[[], None]:
    """Ray's ``worker_process_setup_hook`` that does the same in each worker process of a test's Ray
    instance. A closure, so that Ray ships it by value: its workers cannot import ``tests``."""
    n = SMALL_N

    def install() -> None:
        from mfsbench.device import roofline

        real = roofline.measure_peaks

        def measure_small_peaks(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("n", n)
            return real(*args, **kwargs)

        roofline.measure_peaks = measure_small_peaks

    return install
