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
