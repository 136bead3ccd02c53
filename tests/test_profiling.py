"""Folding a runtime profiler's events into per-operator milliseconds per run."""

from __future__ import annotations

import pytest

from mfsbench.device.runtimes.profiling import TOP_NODES, aggregate


def test_aggregate_averages_per_run_and_orders_by_time() -> None:
    events = [("conv1", "Conv", 2.0), ("up", "Resize", 1.0), ("conv2", "Conv", 0.5)] * 2
    profile = aggregate(events, runs=2, tool="t")
    assert profile.by_op_type == {"Conv": 2.5, "Resize": 1.0}
    assert profile.top_nodes[0] == ("conv1", "Conv", 2.0) and profile.total_ms == 3.5
    as_dict = profile.as_dict()
    assert as_dict["by_op_type"] == [["Conv", 2.5], ["Resize", 1.0]]  # order survives sorted-key JSON
    assert as_dict["top_nodes"][1] == ["up", "Resize", 1.0]


def test_aggregate_keeps_only_the_slowest_nodes_and_rejects_empty_profiles() -> None:
    events = [(f"n{i}", "Conv", float(i)) for i in range(TOP_NODES + 5)]
    profile = aggregate(events, runs=1, tool="t")
    assert len(profile.top_nodes) == TOP_NODES and profile.top_nodes[0][0] == f"n{TOP_NODES + 4}"
    with pytest.raises(ValueError, match="no operator events"):
        aggregate([], runs=3, tool="empty")
    with pytest.raises(ValueError, match="runs"):
        aggregate(events, runs=0, tool="t")
