"""The per-stage timer shared by the swap pipeline and the quality runner."""

from __future__ import annotations


def test_stage_timer_sums_merges_and_copies() -> None:
    from mfsbench.device.timing import StageTimer

    timer = StageTimer()
    with timer.time("detect"):
        pass
    timer.add("frame_network", 0.5)
    timer.add("frame_network", 1.5)
    timer.add("decode", 3.0, calls=6)
    assert timer.calls == {"detect": 1, "frame_network": 2, "decode": 6}
    assert timer.mean_ms()["frame_network"] == 1000.0 and timer.mean_ms()["decode"] == 500.0
    item = StageTimer()
    item.merge(timer, skip=("detect",))
    assert item.items() == {"frame_network": (2.0, 2), "decode": (3.0, 6)}
    snapshot = item.copy()
    item.clear()
    assert item.items() == {} and snapshot.total_s() == {"frame_network": 2.0, "decode": 3.0}


def test_skewed_samples_tell_median_from_mean() -> None:
    """Audit E1: with 1..100 the mean equals the median, so fps_p50 and fps_mean could be swapped
    unnoticed; a skewed set (one slow outlier) separates every location statistic."""
    import pytest

    from mfsbench.device.timing import latency_stats

    samples = [10.0, 10.0, 11.0, 12.0, 100.0]
    st = latency_stats(samples)
    assert st.p50_ms == 11.0 and st.mean_ms == pytest.approx(28.6)
    assert st.fps_p50 == pytest.approx(1000 / 11.0) and st.fps_mean == pytest.approx(1000 / 28.6)
    assert st.min_ms == 10.0 and st.max_ms == 100.0
    assert st.p90_ms == pytest.approx(12.0 + 0.6 * 88.0)  # linear between the 4th and 5th sample


def test_capped_timing_with_too_few_runs_says_so_in_its_metrics() -> None:
    """Audit A11: metrics() dropped too_few_runs, so a capped cell looked like a normal one."""
    from mfsbench.device.runtimes.base import SimplePrepared, TensorInfo
    from mfsbench.device.timing import time_runtime

    ticks = iter(range(1000))
    prepared = SimplePrepared([TensorInfo("x", (1,))], lambda _inputs: [])
    result = time_runtime(prepared, {"x": None}, warmup=0, min_runs=50, min_seconds=0.0, max_seconds=3.0,
                          clock=lambda: float(next(ticks)))
    metrics = result.metrics()
    assert metrics["capped"] == 1.0 and metrics["too_few_runs"] == 1.0 and metrics["runs"] < 50
