"""Thread pinning: a unit computes the driver's digits wherever it runs (fast, no Ray needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mfsbench.engine import pin_threads, pinned_threads
from mfsbench.errors import BadInputError
from mfsbench.quality.units import QualityUnitTask, check_unit_fits


def test_pinned_threads_sets_the_count_and_gives_the_previous_one_back() -> None:
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    with pinned_threads(wanted) as threads:
        assert threads == wanted == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pinned_threads(None) as threads:  # no request: torch's own count, untouched
        assert threads == before


def test_a_count_below_one_is_refused_naming_the_fix() -> None:
    with pytest.raises(BadInputError, match="pass 1 or more"):
        pin_threads(0)


class _Cluster:
    """What :func:`check_unit_fits` reads of a Ray engine: its alive nodes and their resources."""

    def __init__(self, *cpus: float) -> None:
        self.cpus = cpus

    def nodes(self) -> list[dict[str, Any]]:
        return [{"node_id": str(i), "address": "", "resources": {"CPU": c}} for i, c in enumerate(self.cpus)]


def test_a_unit_larger_than_every_node_is_refused_and_one_that_fits_passes() -> None:
    with pytest.raises(BadInputError, match=r"largest Ray node has 1 CPU\(s\); pass --threads 1"):
        check_unit_fits(_Cluster(1.0, 1.0), 2)
    check_unit_fits(_Cluster(1.0, 4.0), 4)
    check_unit_fits(object(), 64)  # the local engine has no nodes: its units run in this process


def test_a_quality_unit_reserves_its_threads_and_keys_its_worker_by_them(tmp_path: Path) -> None:
    from mfsbench.quality.protocol import load_protocol

    task = QualityUnitTask(root=str(tmp_path), splits_dir=str(tmp_path), protocol=load_protocol("ffpp_v1"),
                           rows=(), evaluators="offline", evaluator_paths=(), subset="test",
                           node_cache=str(tmp_path / "c.sqlite"), results_url=str(tmp_path / "u"), threads=3)
    assert task.ray_options(("t", "s", "r")) == {"num_cpus": 3}
    other = QualityUnitTask(**{**task.__dict__, "threads": 1})
    assert other.memo_key() != task.memo_key()
