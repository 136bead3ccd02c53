"""Thread pinning: a unit computes the driver's digits wherever it runs (fast, no Ray needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mfsbench.engine import pin_threads, pinned_threads
from mfsbench.errors import BadInputError
from mfsbench.quality.units import QualityUnitTask, fit_unit_threads


def test_pinned_threads_sets_the_count_and_gives_the_previous_one_back() -> None:
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    with pinned_threads(wanted) as threads:
        assert threads == wanted == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pinned_threads(None) as threads:  # no request: nothing pinned, torch's count untouched
        assert threads is None and torch.get_num_threads() == before


def test_a_count_below_one_is_refused_naming_the_fix() -> None:
    with pytest.raises(BadInputError, match="pass 1 or more"):
        pin_threads(0)


class _Cluster:
    """What :func:`fit_unit_threads` reads of a Ray engine: its alive nodes and their resources."""

    def __init__(self, *cpus: float) -> None:
        self.cpus = cpus

    def nodes(self) -> list[dict[str, Any]]:
        return [{"node_id": str(i), "address": "", "resources": {"CPU": c}} for i, c in enumerate(self.cpus)]


def test_an_explicit_count_no_node_holds_is_refused_and_the_default_falls_back_with_a_warning(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BadInputError, match=r"largest Ray node has 1 CPU\(s\); pass --threads 1"):
        fit_unit_threads(_Cluster(1.0, 1.0), 2, explicit=True)
    assert capsys.readouterr().err == ""
    assert fit_unit_threads(_Cluster(1.0, 1.0), 2, explicit=False) == 1  # the driver's count, defaulted
    assert "quality units run 1 thread(s)" in capsys.readouterr().err
    assert fit_unit_threads(_Cluster(1.0, 4.0), 4, explicit=True) == 4
    assert fit_unit_threads(object(), 64, explicit=True) == 64  # local engine: units run in this process
    assert capsys.readouterr().err == ""


def test_no_thread_request_leaves_torch_unimported() -> None:
    """A cache re-render passes no --threads: the command must not load torch for it."""
    import subprocess
    import sys

    code = ("import sys\nfrom mfsbench.engine import pinned_threads\n"
            "with pinned_threads(None) as t:\n    print(t, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["None", "False"]


def test_a_quality_unit_reserves_its_threads_and_keys_its_worker_by_them(tmp_path: Path) -> None:
    from mfsbench.quality.protocol import load_protocol

    task = QualityUnitTask(root=str(tmp_path), splits_dir=str(tmp_path), protocol=load_protocol("ffpp_v1"),
                           rows=(), evaluators="offline", evaluator_paths=(), subset="test",
                           node_cache=str(tmp_path / "c.sqlite"), results_url=str(tmp_path / "u"), threads=3)
    assert task.ray_options(("t", "s", "r")) == {"num_cpus": 3}
    other = QualityUnitTask(**{**task.__dict__, "threads": 1})
    assert other.memo_key() != task.memo_key()
