"""Phones as Ray resources: each phone is a custom resource ``adb:<serial>`` of the host it is plugged
into (issue 19 item 4).

Why a resource, not a lock: Ray then schedules a phone's jobs on the one node that can reach the phone,
runs them one at a time (the resource has capacity 1), and runs jobs on different phones in parallel,
on one host or many, without the driver knowing where a phone is. A timing job must own its phone:
two benchmarks on one phone would each measure the other's load.

``mfsbench ray-node`` starts (or prints) the ``ray start`` command of a node that declares the phones
its adb sees; :func:`phone_options` is what a phone job asks Ray for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from mfsbench.errors import BadInputError

RESOURCE_PREFIX = "adb:"
#: CPU slots a phone job takes on its host: the phone does the work; the host only pushes and polls.
PHONE_JOB_CPUS = 0


def phone_resource(serial: str) -> str:
    """The Ray resource name of phone ``serial`` (``adb:R58M12345``, ``adb:192.168.1.7:5555``)."""
    if not serial or any(c.isspace() for c in serial):
        raise BadInputError(f"bad adb serial {serial!r}: it must be one word, as `adb devices` prints it")
    return RESOURCE_PREFIX + serial


def node_resources(serials: Iterable[str]) -> dict[str, float]:
    """The custom resources of a node with these phones: capacity 1 each."""
    return {phone_resource(serial): 1.0 for serial in serials}


def phone_options(serial: str) -> dict[str, Any]:
    """Ray task options of a job on phone ``serial``: that phone's resource, no CPU slot."""
    return {"num_cpus": PHONE_JOB_CPUS, "resources": {phone_resource(serial): 1.0}}


def phones_of(resources: dict[str, float]) -> list[str]:
    """The serials among a node's or cluster's resources."""
    return sorted(name[len(RESOURCE_PREFIX):] for name in resources if name.startswith(RESOURCE_PREFIX))


def attached_phones(devices: dict[str, str]) -> list[str]:
    """Serials in ``device`` state (``adb devices -l``: offline and unauthorized phones cannot run)."""
    return sorted(serial for serial, state in devices.items() if state == "device")


def ray_start_command(serials: Sequence[str], *, address: str | None, ray: str = "ray",
                      timing: bool = False) -> list[str]:
    """``ray start`` for a node declaring ``serials`` (and, with ``timing``, the timer that lets it run
    desktop timing units one at a time, :mod:`mfsbench.engine.timing`): joining ``address``, or a
    head without one."""
    from mfsbench.engine.timing import timer_resources

    where = ["--address", address] if address else ["--head"]
    resources = {**node_resources(serials), **(timer_resources() if timing else {})}
    return [ray, "start", *where, "--resources", json.dumps(resources, sort_keys=True)]
