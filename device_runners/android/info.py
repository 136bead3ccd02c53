"""What state a phone is in: identity (getprop), CPU governor/frequencies, thermal status, battery.

A number on a phone means little without the governor and temperature it was measured at, so every
record carries these before and after each model. A fact the device does not expose is recorded as
``"unavailable"`` with no guess.
"""

from __future__ import annotations

import re
from typing import Any

from device_runners.android.adb import Adb, AdbTimeout

UNAVAILABLE = "unavailable"
PROPS = {"model": "ro.product.model", "manufacturer": "ro.product.manufacturer",
         "board": "ro.product.board", "platform": "ro.board.platform", "soc": "ro.soc.model",
         "hardware": "ro.hardware", "abi": "ro.product.cpu.abi", "android": "ro.build.version.release",
         "sdk": "ro.build.version.sdk"}
_CPU_SCRIPT = ('for c in /sys/devices/system/cpu/cpu[0-9]*; do echo "${c##*/} '
               '$(cat $c/cpufreq/scaling_governor 2>/dev/null || echo -) '
               '$(cat $c/cpufreq/scaling_cur_freq 2>/dev/null || echo -) '
               '$(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null || echo -)"; done')


def identity(adb: Adb) -> dict[str, str]:
    """getprop facts in one call (``getprop`` lists ``[key]: [value]``)."""
    out = adb.shell("getprop", check=False).stdout
    props = dict(re.findall(r"^\[([^\]]+)\]:\s*\[([^\]]*)\]", out, flags=re.M))
    return {name: props.get(key) or UNAVAILABLE for name, key in PROPS.items()}


def state(adb: Adb) -> dict[str, Any]:
    """CPU governors and frequencies, thermal status and battery temperature, right now."""
    facts: dict[str, Any] = {}
    cpus = {}
    for line in adb.shell(_CPU_SCRIPT, check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].startswith("cpu"):
            governor, cur, top = parts[1:]
            cpus[parts[0]] = {"governor": governor if governor != "-" else UNAVAILABLE,
                              "cur_khz": int(cur) if cur.isdigit() else UNAVAILABLE,
                              "max_khz": int(top) if top.isdigit() else UNAVAILABLE}
    facts["cpus"] = cpus or UNAVAILABLE
    facts["thermal_status"] = _thermal_status(adb)
    facts["battery_temp_c"] = _battery_temp(adb)
    return facts


def _thermal_status(adb: Adb) -> int | str:
    try:
        out = adb.shell("dumpsys thermalservice", check=False, timeout_s=20).stdout
    except AdbTimeout:
        return UNAVAILABLE
    found = re.search(r"Thermal Status:\s*(\d+)", out)
    return int(found.group(1)) if found else UNAVAILABLE


def _battery_temp(adb: Adb) -> float | str:
    try:
        out = adb.shell("dumpsys battery", check=False, timeout_s=20).stdout
    except AdbTimeout:
        return UNAVAILABLE
    found = re.search(r"^\s*temperature:\s*(-?\d+)", out, flags=re.M)
    return int(found.group(1)) / 10.0 if found else UNAVAILABLE
