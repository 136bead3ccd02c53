"""``mfsbench device --engine ray``: desktop sweeps and phones as Ray units (issue 19 item 1).

One local Ray instance serves the module (starting one costs seconds on 2 cores). It is started
after the module's adb server (so its workers talk to that server) and declares what a node started
by ``mfsbench ray-node`` declares: the ``mfsbench-timer`` resource and two loopback phones.

* a desktop sweep on Ray measures the same cells (status, executed precision, parity) as locally,
  each record finished on the worker with that node's peaks;
* two timing units on one node never overlap: with 2 CPU slots and ``--threads 1`` Ray would run
  them at once, and only the timer keeps them apart (checked on the units' own start and end times);
* ``--adb --engine ray`` runs each phone × model on its phone's resource: both phones' records land;
* a cluster without the timer resource is refused at once, in one line naming ``mfsbench ray-node``.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mfsbench.engine.timing import TIMER_RESOURCE, check_timing_nodes
from mfsbench.errors import BadInputError
from mfsbench.records import Record, append_records, read_records
from tests.conftest import cli_in_process
from tests.loopback_adb import LoopbackDevice, adb_server, replay_binary  # noqa: F401  (fixture)
from tests.small_peaks import small_peaks_worker_hook, use_small_peaks

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO / "tests" / "data" / "adb" / "sample_benchmark_model_public_log.txt"
#: two tiny models (two units), torch-eager fp32 (no export): the cheapest real timing cells
SWEEP = ("device", "--models", "test_frame_only,test_mobilefaceswap", "--backends", "torch-eager",
         "--precision", "fp32", "--threads", "1", "--runs", "2", "--warmup", "0", "--min-seconds", "0",
         "--peak-seconds", "0.05")
PHONE_MODEL = "test_frame_only"


def test_timing_nodes_are_checked_before_any_unit() -> None:
    node = {"node_id": "n1", "address": "10.0.0.1", "resources": {"CPU": 4.0, TIMER_RESOURCE: 1.0}}
    bare = {"node_id": "n2", "address": "10.0.0.2", "resources": {"CPU": 16.0}}
    assert check_timing_nodes([node, bare], 4) == [node]
    with pytest.raises(BadInputError, match="mfsbench ray-node"):
        check_timing_nodes([bare], 1)
    with pytest.raises(BadInputError, match=r"--threads 8 needs 8 CPUs .* at most 4; pass --threads 4"):
        check_timing_nodes([node, bare], 8)


def test_a_niced_worker_refuses_to_time() -> None:
    """Ray's default worker niceness (15) would time the model behind every other process."""
    code = ("import os; os.nice(15)\n"
            "from mfsbench.engine.timing import check_worker_priority\n"
            "try:\n    check_worker_priority()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.startswith("BadInputError") and "niceness 15" in done.stdout
    assert "mfsbench ray-node" in done.stdout


@pytest.mark.cli
def test_ray_node_declares_the_timer_unless_told_not_to() -> None:
    timing = cli_in_process("ray-node", "--head", "--no-phones", "--print")
    assert timing.code == 0, timing.err
    words = shlex.split(timing.out)
    assert words[:3] == ["RAY_worker_niceness=0", "ray", "start"]  # timing workers at normal priority
    assert json.loads(words[-1]) == {TIMER_RESOURCE: 1.0}
    bare = shlex.split(cli_in_process("ray-node", "--head", "--no-phones", "--no-timing", "--print").out)
    assert bare[0] == "ray" and json.loads(bare[-1]) == {}


@pytest.fixture(scope="module")
def phones(adb_server: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LoopbackDevice]]:  # noqa: F811
    """Two loopback phones on the module's adb server."""
    made = []
    for name in ("one", "two"):
        props = {"ro.product.model": f"Loopback_{name}", "ro.product.board": "loop",
                 "ro.board.platform": "mt6891", "ro.soc.model": "MT6891", "ro.product.cpu.abi": "arm64-v8a",
                 "ro.build.version.release": "13", "ro.build.version.sdk": "33"}
        device = LoopbackDevice(tmp_path_factory.mktemp(f"phone-{name}"), props).start()
        adb_server.connect(device.serial)  # type: ignore[attr-defined]
        made.append(device)
    yield made
    for device in made:
        device.kill()


@pytest.fixture(scope="module")
def ray_cluster(phones: list[LoopbackDevice]) -> Iterator[object]:
    """One node as `mfsbench ray-node` starts it: the timer and both phones (2 CPUs, capped store).
    Its workers measure the peaks on a small product (tests/small_peaks.py): the node's own, smaller."""
    ray = pytest.importorskip("ray")
    from mfsbench.engine.phones import node_resources
    from mfsbench.engine.timing import TIMING_SYSTEM_CONFIG, timer_resources

    if ray.is_initialized():  # left by another module: start from a known instance
        ray.shutdown()
    ray.init(num_cpus=2, resources={**timer_resources(), **node_resources(p.serial for p in phones)},
             _system_config=TIMING_SYSTEM_CONFIG, object_store_memory=100 * 2**20, include_dashboard=False,
             log_to_driver=False, runtime_env={"worker_process_setup_hook": small_peaks_worker_hook()})
    yield ray
    ray.shutdown()


def _cells(records: list[Record]) -> dict[tuple, tuple]:
    """What a cell measured, engine aside: status, executed precision, parity, MACs and weights."""
    return {(r.model, r.info["size"], r.info["backend"], r.info["precision"]):
            (r.status, r.info.get("executed_precision"), r.metrics.get("max_abs_err"),
             r.metrics.get("psnr_db"), r.info.get("macs_executed"), r.info.get("weights"),
             r.info.get("parity_inputs"))
            for r in records}


@pytest.fixture(scope="module")
def ray_sweep(ray_cluster: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Record], str]:
    out = tmp_path_factory.mktemp("ray-sweep")
    result = cli_in_process(*SWEEP, "--engine", "ray", "--out", str(out))
    assert result.code == 0, result.err
    return read_records(out / "records.jsonl"), result.err


@pytest.mark.slow
@pytest.mark.cli
def test_a_resumed_ray_sweep_runs_only_the_missing_unit_on_its_node_peaks(
        ray_sweep: tuple[list[Record], str], tmp_path: Path) -> None:
    """The store a driver killed after its first unit landed: --resume runs the other unit only, under
    the same run id, with the peaks that node measured before (not measured again, not the driver's)."""
    records, _ = ray_sweep
    kept = [r for r in records if r.model == "test_frame_only"]
    append_records(tmp_path / "records.jsonl", kept)
    result = cli_in_process(*SWEEP, "--engine", "ray", "--resume", "--out", str(tmp_path))
    assert result.code == 0, result.err
    assert "test_frame_only @ 32: every cell is measured already" in result.err
    assert "1 model unit(s) on Ray" in result.err
    after = read_records(tmp_path / "records.jsonl")
    (added,) = after[len(kept):]
    assert added.model == "test_mobilefaceswap" and added.run_id == kept[0].run_id
    if "peak_remeasured" not in added.info:  # a cell faster than the peak re-measures it (and says so)
        assert added.info["peaks"] == kept[-1].info["peaks"]


@pytest.mark.slow
@pytest.mark.cli
def test_two_timing_units_on_one_node_never_overlap(ray_sweep: tuple[list[Record], str]) -> None:
    records, err = ray_sweep
    units = {r.model: r.info["unit"] for r in records}
    assert set(units) == {"test_frame_only", "test_mobilefaceswap"}
    first, second = sorted(units.values(), key=lambda u: u["started"])
    assert first["finished"] <= second["started"], f"two timings shared the node: {units}"
    assert "2 model unit(s) on Ray" in err
    assert "measuring this machine's peak" not in err  # the driver measures no peak: each node does


@pytest.mark.slow
@pytest.mark.cli
def test_ray_sweep_measures_the_local_cells_on_the_worker(ray_sweep: tuple[list[Record], str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    remote, _ = ray_sweep
    use_small_peaks(monkeypatch)  # the peaks' size as on the workers
    result = cli_in_process(*SWEEP, "--out", str(tmp_path))
    assert result.code == 0, result.err
    local = read_records(tmp_path / "records.jsonl")
    assert _cells(remote) == _cells(local)
    assert all(r.status == "ok" and r.metrics["max_abs_err"] <= 1e-4 for r in remote)
    for record in remote:  # built, stamped and scaled on the worker
        assert record.info["engine"] == "ray" and record.info["ray_node_id"]
        assert record.env["host"] == socket.gethostname() == record.info["unit"]["host"]
        assert record.info["unit"]["niceness"] == 0
        assert record.info["peaks"]["fp32"]["macs_per_s"] > 0 and 0 < record.metrics["efficiency"] < 1
        assert len({r.run_id for r in remote}) == 1
    assert {r.info["engine"] for r in local} == {"local"}


@pytest.mark.slow
@pytest.mark.adb
@pytest.mark.cli
def test_phones_as_resources_each_run_their_units(ray_cluster: object, phones: list[LoopbackDevice],
                                                  tmp_path: Path) -> None:
    binary = replay_binary(tmp_path / "benchmark_model", RECORDED)
    out = tmp_path / "out"
    args = ("device", "--adb", "--engine", "ray", "--models", PHONE_MODEL, "--benchmark-binary", str(binary),
            "--threads", "4", "--out", str(out))
    unknown = cli_in_process(*args, "--serial", "R58M0")
    assert unknown.code == 2 and "R58M0 is not a phone of the Ray cluster" in unknown.err
    assert len(unknown.err.strip().splitlines()) == 1
    result = cli_in_process(*args)
    assert result.code == 0, result.err
    records = read_records(out / "records.jsonl")
    assert sorted(r.info["serial"] for r in records) == sorted(p.serial for p in phones)
    for record in records:
        assert record.status == "ok" and record.metrics["p50_ms"] == pytest.approx(51.891)
        assert record.info["engine"] == "ray" and record.info["ray_node_id"]
        assert record.info["device_sha256"] == record.info["model_sha256"]
        assert record.env["host"] == socket.gethostname()
    assert len({r.run_id for r in records}) == 1
    for phone in phones:  # each phone ran the model once, and nothing is left on it
        assert len([c for c in phone.commands if "benchmark_model" in c and "--graph" in c]) == 1
        assert list((phone.root / "data/local/tmp").iterdir()) == []
    again = cli_in_process(*args, "--resume")
    assert again.code == 0 and "measured already" in again.err
    assert len(read_records(out / "records.jsonl")) == len(records)


@pytest.mark.slow
@pytest.mark.cli
def test_a_model_card_is_timed_as_a_ray_unit(ray_cluster: object, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A card's spec crosses to the worker as a unit (its files by path, never loaded here): the worker
    builds the card, takes parity on the user's file, and its record names the file, card and licence."""
    import hashlib

    from tests.cards_fixtures import INSWAPPER_LIKE_MACS, example_card

    monkeypatch.setenv("MFSBENCH_ARTIFACT_CACHE", str(tmp_path / "cache"))  # forwarded to the workers
    card = example_card(tmp_path / "models")
    digest = hashlib.sha256((tmp_path / "models" / "inswapper_128.onnx").read_bytes()).hexdigest()
    out = tmp_path / "out"
    result = cli_in_process("device", "--models", str(card), "--backends", "onnxruntime", "--precision",
                            "fp32", "--accept-license", "--threads", "1", "--runs", "3", "--warmup", "1",
                            "--min-seconds", "0", "--peak-seconds", "0.05", "--engine", "ray", "--out",
                            str(out))
    assert result.code == 0, result.err
    (record,) = read_records(out / "records.jsonl")
    assert record.model == "inswapper_128" and record.status in ("ok", "unstable")
    assert record.info["engine"] == "ray" and record.info["ray_node_id"]
    assert record.info["weights"] == f"sha256 {digest}, card {card}"
    assert record.info["license"] == "LicenseRef-InsightFace-NonCommercial"
    assert record.info["macs_executed"] == INSWAPPER_LIKE_MACS and record.metrics["max_abs_err"] <= 1e-4


@pytest.mark.slow
@pytest.mark.cli
def test_a_cluster_without_the_timer_is_refused_in_one_line(tmp_path: Path) -> None:
    """A cluster started by plain `ray start` (Ray's test cluster, no timer), joined by a driver process."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "object_store_memory": 80 * 2**20})
    try:
        done = subprocess.run([sys.executable, "-m", "mfsbench.cli", *SWEEP, "--engine", "ray",
                               "--ray-address", cluster.address, "--out", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    finally:
        cluster.shutdown()
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and TIMER_RESOURCE in errors[0] and "mfsbench ray-node" in errors[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "records.jsonl").exists()
