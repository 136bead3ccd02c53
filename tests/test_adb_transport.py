"""The real adb client against the loopback device: connect, push/pull, exit codes, timeouts."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from device_runners.android import info
from device_runners.android.adb import AdbError, AdbTimeout
from tests.loopback_adb import adb_server, loopback  # noqa: F401  (fixtures)

pytestmark = pytest.mark.adb


def test_connect_push_pull_byte_identical(adb_server, loopback, tmp_path: Path) -> None:  # noqa: F811
    device = loopback()
    adb_server.connect(device.serial)
    assert adb_server.devices()[device.serial] == "device"
    adb = adb_server.for_serial(device.serial)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(300_000))
    remote = "/data/local/tmp/it's a dir/b l o b.bin"
    adb.push(blob, remote)
    assert device.host_path(remote).read_bytes() == blob.read_bytes()
    adb.pull(remote, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == blob.read_bytes()
    listed = adb.shell(f"ls {shlex.quote(os.path.dirname(remote))}").stdout
    assert listed.strip() == "b l o b.bin"
    with pytest.raises(AdbError, match="does not exist"):
        adb.pull("/data/local/tmp/nonexistent", tmp_path / "x")


def test_exit_code_and_stderr(adb_server, loopback) -> None:  # noqa: F811
    device = loopback()
    adb_server.connect(device.serial)
    adb = adb_server.for_serial(device.serial)
    done = adb.shell("echo out; echo problem >&2; exit 3", check=False)
    assert (done.stdout, done.stderr, done.returncode) == ("out\n", "problem\n", 3)
    with pytest.raises(AdbError, match=r"exit code 3 .*problem"):
        adb.shell("echo problem >&2; exit 3")


def test_hanging_command_hits_timeout(adb_server, loopback) -> None:  # noqa: F811
    device = loopback()
    adb_server.connect(device.serial)
    adb = adb_server.for_serial(device.serial)
    with pytest.raises(AdbTimeout, match=r"timed out after 1\.5 s"):
        adb.shell("sleep 30", timeout_s=1.5)
    assert adb.shell("echo alive").stdout == "alive\n"


def test_device_facts(adb_server, loopback) -> None:  # noqa: F811
    device = loopback(battery_temp_c10=405, thermal_status=2)
    adb_server.connect(device.serial)
    adb = adb_server.for_serial(device.serial)
    facts = info.identity(adb)
    assert facts["model"] == "Loopback_phone" and facts["soc"] == "MT6891" and facts["abi"] == "arm64-v8a"
    assert facts["manufacturer"] == "unavailable"
    now = info.state(adb)
    assert now["battery_temp_c"] == 40.5 and now["thermal_status"] == 2
    assert now["cpus"]["cpu2"] == {"governor": "schedutil", "cur_khz": 1300000, "max_khz": 2600000}
