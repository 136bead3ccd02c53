"""A simulated two-node Ray cluster (Ray's test cluster utilities) loses a node mid-run; the run completes.

The driver is a separate ``mfsbench quality --ray-address`` process (the path a real cluster uses);
this test owns the cluster and removes one worker node as soon as the first unit is published.
Units on the removed node are retried on the other one; the table equals the local one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.quality_units import REPO, UNITS, quality, units_run

pytestmark = pytest.mark.slow


def test_a_node_removed_mid_run_still_completes(units_tree: tuple[Path, Path], units_local_csv: bytes,
                                                tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # another module's instance: this test needs its own cluster
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "object_store_memory": 80 * 2**20})
    try:
        doomed = cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
        cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
        cluster.wait_for_nodes()
        units = tmp_path / "units"
        args = quality(units_tree, tmp_path, "--engine", "ray", "--ray-address", cluster.address)
        child = subprocess.Popen([sys.executable, "-m", "mfsbench.cli", *args], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 50
        while time.monotonic() < deadline and child.poll() is None:
            if units.is_dir() and any(units.glob("*.parquet")):
                break
            time.sleep(0.02)
        at_removal = len(list(units.glob("*.parquet")))
        assert child.poll() is None and at_removal < UNITS, "the node must go while units remain"
        cluster.remove_node(doomed)
        _, err = child.communicate(timeout=90)  # a hang guard; it takes ~20-40 s on 2 loaded cores
        assert child.returncode == 0, err
        assert units_run(err) == UNITS
        assert len(list(units.glob("*.parquet"))) == UNITS
        assert (tmp_path / "table2_quality.csv").read_bytes() == units_local_csv
    finally:
        cluster.shutdown()
