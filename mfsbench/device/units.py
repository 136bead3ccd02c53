"""``mfsbench device --engine ray``: one model × size of the desktop sweep as one engine unit.

Why a unit is a whole model, not a cell: a model's cells share its export (one ONNX file serves
every runtime that runs it), its parity references and its MAC count, so splitting them would
export and count again per cell. A unit is small and picklable (:class:`DesktopUnitTask` holds
settings, the cells, the weights reference and the faces path; the unit is the spec and its size):
the worker builds the model itself, never receives it.

Timing owns its node: a unit asks for the node's ``mfsbench-timer`` resource and ``threads`` CPU
slots (:func:`mfsbench.engine.timing.timer_options`), so two units never time on one node at once.

Peaks are per node: the worker measures the machine's peak MAC/s once per worker process
(:func:`~mfsbench.engine.worker_memo`, keyed by threads and peak seconds) under that same timer,
and a cell's efficiency divides by the peak of the node it ran on, never the driver's. A resumed
sweep hands each node back the peaks its host measured before (``stored_peaks``, by host name), so
its resumed cells share that node's scale, as a local resume shares the machine's.

A worker at Ray's default niceness 15 refuses to time (:func:`mfsbench.engine.timing.check_worker_priority`).

Every record is finished in the worker: ``env`` (host, CPU, versions) is the worker's, and
``info["engine"]`` / ``info["ray_node_id"]`` / ``info["unit"]`` say where and when the unit ran.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfsbench.records import Record, environment, now_iso

if TYPE_CHECKING:
    from mfsbench.device.roofline import Peaks
    from mfsbench.device.sweep import CellKey, SweepSettings, WeightsRef
    from mfsbench.registry import ModelSpec

#: one unit: the model's spec and the frame size it runs at
DesktopUnit = tuple["ModelSpec", int]


def ray_node_id() -> str | None:
    """The Ray node this process runs on (None outside a Ray worker); cheap, no cluster call."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # an older Ray or a driver-side call: the host name still says where
        return None


def stored_peaks_by_host(records: list[Record]) -> tuple[tuple[str, str], ...]:
    """The last peaks each host measured in a (resumed) sweep's records, as ``(host, JSON)`` pairs
    (hashable: they key the worker's memo)."""
    import json

    found: dict[str, str] = {}
    for record in records:
        host = record.env.get("host")
        if host and record.info.get("peaks"):
            found[str(host)] = json.dumps(record.info["peaks"], sort_keys=True)
    return tuple(sorted(found.items()))


@dataclass(frozen=True)
class DesktopUnitTask:
    """Measures one model × size in a Ray worker; returns its records, each finished there."""

    cells: tuple[tuple[str, str], ...]
    settings: SweepSettings
    weights: WeightsRef
    faces: str | None
    peak_seconds: float
    done: frozenset[CellKey] = frozenset()
    #: host name → the peaks a resumed sweep measured there (see :func:`stored_peaks_by_host`)
    stored_peaks: tuple[tuple[str, str], ...] = ()
    engine: str = "ray"
    #: ``--results-url``: each unit's records published there as one immutable file (None: returned only)
    results_url: str | None = None
    #: the sweep's run id: a unit's published file belongs to this run (another run measures again)
    run_id: str = ""

    def unit_name(self, unit: DesktopUnit) -> str:
        """The unit's fingerprint: the run, the model and size, the cells it measures and everything
        that shapes them (not the other models' progress: a resume after the unit published, whatever
        else landed meanwhile, finds the same name)."""
        import hashlib
        import json
        from dataclasses import asdict

        from mfsbench.device.sweep import pending_cells

        spec, size = unit
        pending = pending_cells(spec.name, size, list(self.cells), set(self.done))
        payload = [self.run_id, spec.name, size, sorted(map(list, pending)), asdict(self.settings),
                   asdict(self.weights), self.faces]
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def ray_options(self, unit: DesktopUnit) -> dict[str, Any]:
        """The node's timer and ``threads`` CPU slots: one timing unit per node at a time."""
        from mfsbench.engine.timing import timer_options

        return timer_options(self.settings.threads)

    def peaks(self) -> Peaks:
        """This node's peaks: those its host measured before in a resumed sweep, else measured now,
        once per worker process (under the timer this unit holds)."""
        import json

        from mfsbench.device.roofline import measure_peaks
        from mfsbench.device.sweep import peaks_from_record
        from mfsbench.engine import worker_memo

        host = socket.gethostname()
        stored = dict(self.stored_peaks).get(host)
        if stored is not None:
            return worker_memo(("device-peaks-stored", host, stored),
                               lambda: peaks_from_record(json.loads(stored)))
        threads, seconds = self.settings.threads, self.peak_seconds
        return worker_memo(("device-peaks", threads, seconds),
                           lambda: measure_peaks(threads=threads, min_seconds=seconds))

    def __call__(self, unit: DesktopUnit) -> list[Record]:
        """Every pending cell of the unit's model, measured on this node."""
        from mfsbench.device.sweep import face_sample_sets, measure_model
        from mfsbench.engine import maybe_kill_self
        from mfsbench.engine.timing import check_worker_priority

        spec, size = unit
        started, node = time.time(), ray_node_id()
        niceness = check_worker_priority() if self.engine == "ray" else os.nice(0)
        maybe_kill_self()
        peaks = self.peaks()
        faces = Path(self.faces) if self.faces else None
        samples = face_sample_sets(spec, size, faces)

        def finish(record: Record) -> None:  # the worker's machine and clock, not the driver's
            record.env = environment()
            record.created = now_iso()
            record.info["engine"] = self.engine
            if node is not None:
                record.info["ray_node_id"] = node

        with tempfile.TemporaryDirectory(prefix="mfsbench-device-unit-") as work:
            records = measure_model(spec, size, cells=list(self.cells), settings=self.settings,
                                    work_dir=Path(work), samples=samples, weights=self.weights, peaks=peaks,
                                    peak_seconds=self.peak_seconds, done=self.done, on_record=finish)
        where = {"started": started, "finished": time.time(), "pid": os.getpid(),
                 "host": socket.gethostname(), "niceness": niceness}
        for record in records:
            record.info["unit"] = where
        if self.results_url:
            publish_unit(self.results_url, self.unit_name(unit), records, spec.name, size)
        return records


def publish_unit(url: str, name: str, records: list[Record], model: str, size: int) -> None:
    """One unit's records as ``<url>/<name>.parquet`` (written atomically: whole or absent)."""
    from mfsbench.engine.publish import ResultFolder

    rows = [(str(index), (record.to_json(),)) for index, record in enumerate(records)]
    ResultFolder(url).publish(name, rows, {"command": "device", "model": model, "size": size,
                                           "host": socket.gethostname(), "cells": len(records)})


def published_names(url: str) -> set[str]:
    """The unit names published under ``url``: listed once per sweep (on object storage each listing
    is a request), then looked up per model with :func:`published_records`."""
    from mfsbench.engine.publish import ResultFolder

    return ResultFolder(url).names()


def published_records(url: str, name: str, listed: Collection[str] | None = None) -> list[Record] | None:
    """A unit's published records, or None when it is not published (``listed``: the folder's names from
    :func:`published_names`; None lists the folder here)."""
    import json

    from mfsbench.engine.publish import ResultFolder

    folder = ResultFolder(url)
    if name not in (folder.names() if listed is None else listed):
        return None
    rows, _ = folder.read(name)
    return [Record.from_dict(json.loads(values[0])) for _, values in sorted(rows, key=lambda r: int(r[0]))]
