"""Timing units own their node: a custom Ray resource ``mfsbench-timer`` of capacity 1 per node.

Why a resource: a desktop timing unit (one model's cells, :mod:`mfsbench.device.units`) measures
latency and the machine's peak MAC/s. Two of them on one node at once would each measure the other's
load, and Ray packs tasks onto free CPU slots. Asking for ``mfsbench-timer: 1`` beside
``num_cpus=threads`` lets Ray run one timing unit per node at a time, and units on different nodes
in parallel, without the driver knowing where anything is.

Who declares it: the local instance :class:`~mfsbench.engine.ray_engine.RayEngine` starts, and every
node ``mfsbench ray-node`` starts (``--no-timing`` leaves it off a node that should not time). A
cluster started another way has none: :func:`check_timing_nodes` then fails at once with one line
naming the fix, instead of leaving the units pending forever.

Priority: Ray starts its workers at niceness 15 by default (``worker_niceness``), so on a machine
with any other load a timing unit would get the CPU last and report that as the model's latency
(measured here: 16.2 ms against 3.7 ms locally for one torch cell at load ~5). Nodes that time run
their workers at niceness 0 (:data:`TIMING_SYSTEM_CONFIG` for a local instance,
:data:`NICENESS_ENV` for ``ray start``), and a unit on a niced worker refuses to time
(:func:`check_worker_priority`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mfsbench.errors import BadInputError

TIMER_RESOURCE = "mfsbench-timer"
#: Ray system config of a local instance that times: workers at the normal priority
TIMING_SYSTEM_CONFIG = {"worker_niceness": 0}
#: the same for a node started by ``ray start`` (Ray reads ``RAY_<config name>`` from the environment)
NICENESS_ENV = ("RAY_worker_niceness", "0")


def timer_resources() -> dict[str, float]:
    """What a node that may run timing units declares, beside its CPUs."""
    return {TIMER_RESOURCE: 1.0}


def timer_options(threads: int) -> dict[str, Any]:
    """Ray task options of one timing unit: the node's timer and ``threads`` CPU slots."""
    return {"num_cpus": threads, "resources": {TIMER_RESOURCE: 1.0}}


def check_timing_nodes(nodes: Sequence[dict[str, Any]], threads: int) -> list[dict[str, Any]]:
    """The alive nodes that can run a timing unit of ``threads`` threads.

    ``nodes`` are :meth:`RayEngine.nodes` entries (``{"node_id", "address", "resources"}``).

    Raises:
        BadInputError: no node declares the timer (a cluster not started by ``mfsbench ray-node``),
            or none of those that do has ``threads`` CPUs (the units could never be scheduled).
    """
    timers = [n for n in nodes if n["resources"].get(TIMER_RESOURCE, 0) >= 1]
    if not timers:
        raise BadInputError(f"no node of the Ray cluster declares the {TIMER_RESOURCE} resource that keeps "
                            "two timings off one node; start its nodes with `mfsbench ray-node` (or add "
                            f"--resources '{{\"{TIMER_RESOURCE}\": 1}}' to `ray start`)")
    able = [n for n in timers if n["resources"].get("CPU", 0) >= threads]
    if not able:
        most = largest_node_cpus(timers)
        raise BadInputError(f"--threads {threads} needs {threads} CPUs on one node, but the timing nodes of "
                            f"the Ray cluster have at most {most}; pass --threads {max(1, most)} or add a "
                            "bigger node")
    return able


def check_worker_priority() -> int:
    """This worker's niceness, when it is 0 or less (a timing here competes on equal terms).

    Raises:
        BadInputError: a niced worker (Ray's default 15), naming the fix.
    """
    import os
    import socket

    niceness = os.nice(0)
    if niceness > 0:
        raise BadInputError(f"Ray runs the workers of {socket.gethostname()} at niceness {niceness} (Ray's "
                            "default): a timing there gets the CPU after every other process; start the node "
                            f"with `mfsbench ray-node`, or with {NICENESS_ENV[0]}={NICENESS_ENV[1]} before "
                            "`ray start`")
    return niceness


def largest_node_cpus(nodes: Iterable[dict[str, Any]]) -> int:
    """The most CPUs one of ``nodes`` (Ray's ``ray.nodes()`` entries) declares; 0 for none. What a unit
    that pins its threads can be given at most (timing units and quality units both ask)."""
    return max((int(n["resources"].get("CPU", 0)) for n in nodes), default=0)
