"""Phones as Ray resources (issue 19 item 4): jobs on two phones run in parallel, two jobs on one phone
never overlap, and `mfsbench ray-node` declares the phones a host's adb sees.

The scheduling test synchronises on files, not on time: a job on one phone waits for the other job's
start marker. Across two phones it must appear (both run at once); on one phone it must not appear
while the first job holds the phone (the resource has capacity 1), which is checked by waiting a few
seconds for an event that never comes — under load that can only make the check weaker, never fail it.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mfsbench.engine.phones import (
    attached_phones,
    node_resources,
    phone_options,
    phone_resource,
    phones_of,
    ray_start_command,
)
from mfsbench.errors import BadInputError
from tests.loopback_adb import adb_server, loopback  # noqa: F401  (fixtures)

#: how long a job waits for the other one's start: long across phones (a worker may take a while to
#: start under load), short on one phone (the wait that must time out)
PARALLEL_WAIT_S, EXCLUSIVE_WAIT_S = 90.0, 4.0


def test_resource_names_and_the_node_command() -> None:
    assert phone_resource("R58M12345") == "adb:R58M12345"
    assert node_resources(["a", "192.168.1.7:5555"]) == {"adb:a": 1.0, "adb:192.168.1.7:5555": 1.0}
    assert phone_options("a") == {"num_cpus": 0, "resources": {"adb:a": 1.0}}
    assert phones_of({"CPU": 2.0, "adb:b": 1.0, "adb:a": 1.0, "memory": 1e9}) == ["a", "b"]
    assert attached_phones({"a": "device", "b": "offline", "c": "unauthorized", "d": "device"}) == ["a", "d"]
    command = ray_start_command(["a", "b"], address="10.0.0.1:6379")
    assert command[:4] == ["ray", "start", "--address", "10.0.0.1:6379"]
    assert json.loads(command[command.index("--resources") + 1]) == {"adb:a": 1.0, "adb:b": 1.0}
    assert ray_start_command([], address=None)[2] == "--head"
    with pytest.raises(BadInputError, match="one word"):
        phone_resource("two words")


@pytest.mark.adb
@pytest.mark.cli
def test_ray_node_declares_the_attached_phones(adb_server, loopback, run_cli) -> None:  # noqa: F811
    first, second = loopback("one"), loopback("two")
    for device in (first, second):
        adb_server.connect(device.serial)
    result = run_cli("ray-node", "--address", "head:6379", "--print")
    assert result.code == 0, result.err
    words = shlex.split(result.out.strip())
    assert words[:5] == ["RAY_worker_niceness=0", "ray", "start", "--address", "head:6379"]
    declared = json.loads(words[words.index("--resources") + 1])
    assert declared == {f"adb:{first.serial}": 1.0, f"adb:{second.serial}": 1.0, "mfsbench-timer": 1.0}
    one = run_cli("ray-node", "--head", "--serial", second.serial, "--print")
    assert json.loads(shlex.split(one.out)[-1]) == {f"adb:{second.serial}": 1.0, "mfsbench-timer": 1.0}
    missing = run_cli("ray-node", "--head", "--serial", "R58M0", "--print")
    assert missing.code == 2 and "R58M0 not attached" in missing.err
    cpu_only = run_cli("ray-node", "--head", "--no-phones", "--print")
    assert cpu_only.code == 0 and json.loads(shlex.split(cpu_only.out)[-1]) == {"mfsbench-timer": 1.0}


@dataclass(frozen=True)
class PhoneProbe:
    """A stand-in phone job: marks its start, then waits for the other job's start marker."""

    folder: str
    wait_s: float

    def ray_options(self, unit: tuple[str, str, str]) -> dict:
        return phone_options(unit[0])

    def __call__(self, unit: tuple[str, str, str]) -> bool:
        _serial, name, other = unit
        folder = Path(self.folder)
        (folder / f"start-{name}").touch()
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            if (folder / f"start-{other}").exists():
                return True
            time.sleep(0.05)
        return False


@pytest.fixture(scope="module")
def ray_with_phones() -> object:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, resources=node_resources(["p1", "p2"]), object_store_memory=100 * 2**20,
             include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_two_phones_run_in_parallel_and_one_phone_runs_one_job_at_a_time(ray_with_phones,
                                                                         tmp_path: Path) -> None:
    from mfsbench.engine import get_engine

    engine = get_engine("ray")  # joins the instance above (it does not own it)
    assert phones_of(ray_with_phones.cluster_resources()) == ["p1", "p2"]
    seen: dict[str, bool] = {}

    def keep(unit: tuple[str, str, str], outcome: bool) -> None:
        seen[unit[1]] = outcome

    parallel = tmp_path / "parallel"
    parallel.mkdir()
    engine.run(PhoneProbe(str(parallel), PARALLEL_WAIT_S), [("p1", "a", "b"), ("p2", "b", "a")], keep)
    assert seen == {"a": True, "b": True}  # each saw the other start: both phones at once

    exclusive = tmp_path / "exclusive"
    exclusive.mkdir()
    seen.clear()
    engine.run(PhoneProbe(str(exclusive), EXCLUSIVE_WAIT_S), [("p1", "c", "d"), ("p1", "d", "c")], keep)
    # the first job waited in vain (the second could not start while it held the phone); the second
    # found the first's marker at once
    assert sorted(seen.values()) == [False, True]
    engine.close()
