"""``mfsbench device --adb --engine ray``: one phone × model as one engine unit.

Why this unit: a phone is a Ray resource of the host it is plugged into (``adb:<serial>``, capacity 1,
:func:`mfsbench.engine.phones.phone_options`), so a unit lands on that host, owns the phone while it
times (two benchmarks on one phone would measure each other), and units on different phones run in
parallel across hosts. The task is small and picklable (specs, settings, the binary's path and
sha256): the worker exports the model itself, once per worker process
(:func:`~mfsbench.engine.worker_memo`), and runs it through its own host's adb with the same
:func:`~device_runners.android.runner.run_device` a local run uses, so a record is the same record.

The benchmark binary is read on the worker: it must be at the same path on every phone host (or in
a shared folder) and be the very file the driver described (same sha256), else the unit stops with
one line saying so.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device_runners.android.runner import PhoneModel, PhoneSettings, run_device, tool_of
from mfsbench.errors import BadInputError
from mfsbench.records import Record, environment, now_iso

if TYPE_CHECKING:
    from mfsbench.device.sweep import WeightsRef
    from mfsbench.registry import ModelSpec

#: one unit: (serial, model name)
PhoneUnit = tuple[str, str]


@dataclass(frozen=True)
class PhoneUnitTask:
    """Times one model on one phone on the host the phone is plugged into; returns its record."""

    specs: tuple[ModelSpec, ...]
    size: int | None
    binary: str
    binary_sha256: str
    settings: PhoneSettings
    adb_timeout_s: float = 60.0
    engine: str = "ray"
    weights: WeightsRef | None = None  # None: seeded random weights (the default seed)

    def ray_options(self, unit: PhoneUnit) -> dict[str, Any]:
        """The phone's resource: one job per phone at a time, on the host that can reach it."""
        from mfsbench.engine.phones import phone_options

        return phone_options(unit[0])

    def model(self, name: str) -> PhoneModel:
        """The exported model, once per worker process (the export folder lives as long as it)."""
        from device_runners.android.cli import export_models
        from mfsbench.engine import worker_memo

        spec = next(s for s in self.specs if s.name == name)
        tool = tool_of(Path(self.binary))

        def export() -> PhoneModel:
            work = Path(tempfile.mkdtemp(prefix="mfsbench-adb-unit-"))
            atexit.register(shutil.rmtree, work, True)
            (exported,) = export_models([spec], self.size, tool, work, self.weights)
            return exported

        return worker_memo(("phone-export", name, self.size, tool, self.weights), export)

    def check_binary(self, serial: str) -> Path:
        """The benchmark binary on this host, the driver's very file.

        Raises:
            BadInputError: missing here, or another file (sha256) than the driver's.
        """
        from mfsbench.checkpoints.digest import sha256_file

        binary, host = Path(self.binary), socket.gethostname()
        if not binary.is_file():
            raise BadInputError(f"--benchmark-binary {binary} is not a file on {host}, the Ray node of phone "
                                f"{serial}; put it at the same path on every phone host (or in a shared "
                                "folder)")
        if sha256_file(binary) != self.binary_sha256:
            raise BadInputError(f"--benchmark-binary {binary} on {host} is not the driver's file (sha256 "
                                f"differs from {self.binary_sha256[:12]}…); copy the same binary to every "
                                "phone host")
        return binary

    def __call__(self, unit: PhoneUnit) -> list[Record]:
        """The unit's model on its phone, through this host's adb; the record is finished here."""
        from device_runners.android.adb import Adb
        from mfsbench.device.units import ray_node_id

        serial, name = unit
        binary = self.check_binary(serial)
        model = self.model(name)
        records = run_device(Adb(timeout_s=self.adb_timeout_s).for_serial(serial), [model], binary,
                             self.settings)
        node = ray_node_id()
        for record in records:  # this host's machine, versions and clock, not the driver's
            record.env = environment()
            record.created = now_iso()
            record.info["engine"] = self.engine
            if node is not None:
                record.info["ray_node_id"] = node
        return records
