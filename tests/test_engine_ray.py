"""``mfsbench quality --engine ray`` on the mini FF++ tree: the local table, and nothing lost under faults.

One Ray instance serves the module (starting one costs seconds on 2 cores); the tests run the CLI
in this process against it. Each work item is a unit published as ``<fingerprint>.parquet``:

* local (today's in-process path) and Ray give byte-identical Table 2 CSVs;
* a worker SIGKILLed mid-unit (the test hook kills its own process once) is retried: the table is
  complete and every unit is published once (one Ray run checks both);
* a driver SIGKILLed mid-run and started again runs only the units not yet published.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mfsbench.engine import KILL_ONCE_ENV
from tests.conftest import cli_in_process
from tests.quality_units import REPO, UNITS, quality, units_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[object]:
    """One local instance for the module, capped as CI must be (2 CPUs, 100 MB object store)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # left by another module: start from a known instance
        ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_table_and_a_sigkilled_worker_is_retried_and_counted_once(
        units_tree: tuple[Path, Path], units_local_csv: bytes, ray_instance: object, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One Ray run with a worker SIGKILLed mid-unit (the hook kills its own process once): the table is
    byte-identical to the local one and every unit is published once; run again, nothing runs; the
    units folder alone renders the same table. (Ray runs with no fault: the torch row's test below.)"""
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    result = cli_in_process(*quality(units_tree, tmp_path, "--engine", "ray"))
    assert result.code == 0, result.err
    assert marker.is_file(), "the hook must have killed a worker"
    killed = int(marker.read_text())
    assert killed != os.getpid()  # a worker died, not the driver
    assert units_run(result.err) == UNITS
    assert (tmp_path / "table2_quality.csv").read_bytes() == units_local_csv
    assert len(list((tmp_path / "units").glob("*.parquet"))) == UNITS
    from mfsbench.quality.store import QualityStore

    with QualityStore(tmp_path / "quality_cache.sqlite") as store:
        items = store.db.execute("SELECT COUNT(*) FROM items WHERE row NOT LIKE '\\_\\_%' ESCAPE '\\'")
        assert items.fetchone()[0] == UNITS
    monkeypatch.delenv(KILL_ONCE_ENV)
    again = cli_in_process(*quality(units_tree, tmp_path, "--engine", "ray"))  # all published: nothing runs
    assert again.code == 0 and units_run(again.err) == 0
    assert (tmp_path / "table2_quality.csv").read_bytes() == units_local_csv
    merged = cli_in_process("quality", "--merge", str(tmp_path / "units"), "--out", str(tmp_path / "merged"))
    assert merged.code == 0, merged.err  # the folder alone renders the same table
    assert (tmp_path / "merged" / "table2_quality.csv").read_bytes() == units_local_csv


def test_a_torch_row_is_byte_identical_and_its_units_ran_the_drivers_threads(
        units_tree: tuple[Path, Path], ray_instance: object, tmp_path: Path) -> None:
    """A Ray worker starts torch on 1 intra-op thread; the student's float output moves by 1 ulp
    between 1 and 2 threads (a bench-sized run then differs in id_cos's 8th digit). Each unit pins the
    driver's count, and the count it read back is recorded: a worker left on 1 fails here."""
    import torch

    from mfsbench.records import read_records

    student = ("--models", "mobilefaceswap_224", "--allow-random-weights", "--threads", "2")
    local = cli_in_process(*quality(units_tree, tmp_path / "local", *student))
    assert local.code == 0, local.err
    assert torch.get_num_threads() == 2
    remote = cli_in_process(*quality(units_tree, tmp_path / "ray", *student, "--engine", "ray"))
    assert remote.code == 0, remote.err
    table = (tmp_path / "local" / "table2_quality.csv").read_bytes()
    assert b"mobilefaceswap_224" in table
    assert (tmp_path / "ray" / "table2_quality.csv").read_bytes() == table
    (pipeline,) = [r for r in read_records(tmp_path / "ray" / "records.jsonl") if r.model == "pipeline"]
    assert pipeline.info["unit_threads"] == [2]


def test_a_unit_that_no_node_can_hold_is_refused_in_one_line(units_tree: tuple[Path, Path],
                                                            ray_instance: object,
                                                            tmp_path: Path) -> None:
    """3 threads per unit on a 2-CPU instance: Ray would wait for ever; the run says so instead."""
    result = cli_in_process(*quality(units_tree, tmp_path, "--engine", "ray", "--threads", "3"))
    assert result.code == 2
    assert "--threads 2" in result.err and "has 2 CPU(s)" in result.err


def test_a_killed_driver_resumes_with_only_the_missing_units(units_tree: tuple[Path, Path],
                                                             units_local_csv: bytes,
                                                             tmp_path: Path) -> None:
    """Local engine in a subprocess publishing units; SIGKILLed after the first ones land."""
    args = quality(units_tree, tmp_path, "--results-url", str(tmp_path / "units"))
    units = tmp_path / "units"
    child = subprocess.Popen([sys.executable, "-m", "mfsbench.cli", *args], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 50
    while time.monotonic() < deadline and child.poll() is None:
        if units.is_dir() and len(list(units.glob("*.parquet"))) >= 2:
            break
        time.sleep(0.02)
    assert child.poll() is None, f"the run ended before it could be killed: {child.stderr.read()!r}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    done = len(list(units.glob("*.parquet")))
    assert 2 <= done < UNITS
    result = cli_in_process(*args)
    assert result.code == 0, result.err
    assert units_run(result.err) == UNITS - done
    assert (tmp_path / "table2_quality.csv").read_bytes() == units_local_csv


def test_flops_on_ray_writes_the_local_table(ray_instance: object, tmp_path: Path) -> None:
    """One Ray task per model; the records land in the model order, so Table 1's files are identical."""
    models = ("--models", "deepfakes_64,facecontroller_224", "--format", "csv")
    local = cli_in_process("flops", *models, "--out", str(tmp_path / "local"))
    remote = cli_in_process("flops", *models, "--out", str(tmp_path / "ray"), "--engine", "ray")
    assert local.code == remote.code == 0, remote.err
    assert remote.out == local.out
    for name in ("table1_complexity.csv", "table1_complexity.md"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
