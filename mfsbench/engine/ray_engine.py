"""The Ray engine: each unit is a Ray task with retries; a worker or node that dies re-runs its unit.

Why tasks, not an actor pool: units are idempotent and publish immutable files, so Ray's task
retries (``max_retries``, on worker or node death) are exactly the fault tolerance needed, and a
task's models are still loaded once per worker process (:func:`~mfsbench.engine.worker_memo`: Ray
reuses a worker for many tasks of one function). Models are built inside the worker from the
weight paths the task carries, never pickled across (Ray cannot pickle every torch module).

Without an address (and without ``RAY_ADDRESS``) :class:`RayEngine` starts a local Ray instance
capped to this machine: one CPU slot per core, the object store capped at
:data:`OBJECT_STORE_BYTES` (Ray's default takes ~30 % of RAM), no dashboard, worker logs not
forwarded, and the node declares the timer resource and runs its workers at the normal priority
(:mod:`.timing`: one timing unit at a time, never at niceness 15).
With an address it joins that cluster and leaves it running.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from mfsbench.errors import MfsbenchError
from mfsbench.optional import require

#: Object store of a local instance: units return small summaries, results go to files.
OBJECT_STORE_BYTES = 256 * 2**20
#: Retries of a unit whose worker (or node) died; app exceptions are not retried (they would fail again).
MAX_RETRIES = 3
#: Units in flight per worker slot: enough to keep every slot busy, few enough to stay small.
IN_FLIGHT_PER_WORKER = 4


def _call(task: Callable[[Any], Any], unit: Any) -> Any:
    """What a Ray worker runs (module level, so workers import it rather than unpickle a closure)."""
    return task(unit)


def _forwarded_env() -> dict[str, str]:
    """``MFSBENCH_*`` settings of the driver, passed on to the workers (they may run elsewhere)."""
    return {k: v for k, v in os.environ.items() if k.startswith("MFSBENCH_")}


class RayEngine:
    """Units as Ray tasks on the cluster at ``address`` (or a local instance it starts and stops)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None) -> None:
        self.ray = require("ray", "ray", "--engine ray")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self._owns = False
        if not self.ray.is_initialized():
            if self.address:
                self.ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                from mfsbench.engine.timing import TIMING_SYSTEM_CONFIG, timer_resources

                self.ray.init(num_cpus=num_cpus or os.cpu_count() or 1, resources=timer_resources(),
                              _system_config=TIMING_SYSTEM_CONFIG,
                              object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                              log_to_driver=False, logging_level=logging.WARNING)
            self._owns = True
        self._remote = self.ray.remote(max_retries=MAX_RETRIES, num_cpus=1)(_call)

    def workers(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def cluster_resources(self) -> dict[str, float]:
        """The cluster's total resources (CPUs, phones as ``adb:<serial>``, timers)."""
        return dict(self.ray.cluster_resources())

    def nodes(self) -> list[dict[str, Any]]:
        """The alive nodes: ``{"node_id", "address", "resources"}`` each (what a unit may ask for)."""
        return [{"node_id": node.get("NodeID", ""), "address": node.get("NodeManagerAddress", ""),
                 "resources": dict(node.get("Resources") or {})}
                for node in self.ray.nodes() if node.get("Alive")]

    def run(self, task: Callable[[Any], Any], units: Sequence[Any],
            on_done: Callable[[Any, Any], None]) -> None:
        """Submit a bounded window of units, hand back each outcome as it lands."""
        ray = self.ray
        env = _forwarded_env()
        base = {"runtime_env": {"env_vars": env}} if env else {}
        task_ref = ray.put(task)  # one copy of the (small) task for every unit
        pending = list(reversed(units))
        running: dict[Any, Any] = {}
        limit = self.workers() * IN_FLIGHT_PER_WORKER
        failure: BaseException | None = None
        while pending or running:
            while pending and len(running) < limit and failure is None:
                unit = pending.pop()
                running[_submit(self._remote, base, task, unit, task_ref)] = unit
            if not running:
                break
            (ready,), _ = ray.wait(list(running), num_returns=1)
            unit = running.pop(ready)
            try:
                outcome = ray.get(ready)
            except ray.exceptions.RayTaskError as exc:  # the unit raised: keep the first, drain the rest
                failure = failure or _cause(exc)
                continue
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
                failure = failure or MfsbenchError(
                    f"unit {unit} lost its worker {MAX_RETRIES + 1} times ({type(exc).__name__}); "
                    "check the workers' memory and logs, then re-run (published units are kept)")
                continue
            on_done(unit, outcome)
        if failure is not None:
            raise failure

    def close(self) -> None:
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
        self._owns = False


def _submit(remote: Any, base: dict[str, Any], task: Any, unit: Any, task_ref: Any) -> Any:
    """Submit one unit with ``base`` options plus those the task asks for it (``task.ray_options(unit)``:
    e.g. a phone's ``adb:<serial>`` resource, :func:`mfsbench.engine.phones.phone_options`)."""
    per_unit = getattr(task, "ray_options", None)
    options = {**base, **(per_unit(unit) if callable(per_unit) else {})}
    return (remote.options(**options) if options else remote).remote(task_ref, unit)


def _cause(exc: Any) -> BaseException:
    """The unit's own exception (a BadInputError stays one: one line, exit 2), not Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return MfsbenchError(f"a unit failed on a Ray worker: {exc}")
