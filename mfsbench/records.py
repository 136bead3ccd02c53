"""The one result type every command emits, and its JSONL store.

A :class:`Record` is a measurement with everything needed to trust or reproduce it: what was measured
(command, model, stage, mode, input shapes), how (convention), on what (library versions, git commit
and whether the tree was dirty, host), and whether it worked (``ok`` / ``skipped`` / ``error`` with the
reason). Metrics are plain numbers whose keys carry their unit (``params_m``, ``gmacs``); nothing is
pre-formatted. JSONL is the source of truth: reports and CSVs are rendered from it and never read
back as data.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from mfsbench.errors import BadInputError

SCHEMA_VERSION = 1
Status = Literal["ok", "skipped", "error"]

#: Distributions whose versions change what a number means; recorded in every record (those installed).
TRACKED_PACKAGES = (
    "mfsbench", "torch", "fvcore", "numpy", "onnx", "onnxruntime", "openvino", "tensorflow",
    "ai-edge-litert", "litert-torch", "ai-edge-quantizer", "opencv-python-headless", "dlib-bin",
)

#: CPU features that decide how fast a network can run: the fp32 FMA width (avx2, avx512f), int8 dot
#: products (VNNI, AMX, Arm dotprod/i8mm) and half-precision arithmetic. Recorded when present.
ISA_FEATURES = (
    "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
    "amx_bf16", "amx_int8", "asimd", "asimdhp", "asimddp", "i8mm", "sve", "bf16",
)
INT8_DOT_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def describe_cpu(cpuinfo: str) -> dict[str, Any]:
    """CPU model and the :data:`ISA_FEATURES` it has, from ``/proc/cpuinfo`` text (x86 or Arm)."""
    model, features = None, set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            features.update(value.split())
    return {"model": model, "isa": [f for f in ISA_FEATURES if f in features]}


def _cpu() -> dict[str, Any]:
    try:
        return describe_cpu(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:  # not Linux: the model name only, features unknown
        return {"model": platform.processor() or None, "isa": None}


def cpu_isa() -> list[str] | None:
    """This machine's :data:`ISA_FEATURES` (None when they cannot be read)."""
    return _cpu()["isa"]


@dataclass
class Record:
    """One measurement (or one honest non-measurement) of one model."""

    command: str
    model: str
    stage: str | None = None
    mode: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    convention: str | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    status: Status = "ok"
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    created: str = ""
    schema: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def new_run_id() -> str:
    """A sortable id shared by all records of one command invocation."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: What "dirty" means for a record: the code that measured differs from the commit. Generated files
#: (reports/, which every `make demo` rewrites) would otherwise mark every reference record dirty.
CODE_PATHS = ("mfsbench", "baselines", "device_runners", "benchmarks", "pyproject.toml", "Makefile")


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Versions, git state and host: what a reader needs to know whether two numbers compare."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS) if commit else None
    # torch's thread count matters only to a run that used torch, and such a run has imported it by
    # now; a command that never touched torch (a cached re-render) should not pay its import for this.
    torch = sys.modules.get("torch")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "packages": versions,
        "git_commit": commit,
        "git_dirty": bool(status) if commit else None,
    }


def stamp(records: Iterable[Record], run_id: str) -> list[Record]:
    """Fill the fields every record of a run shares, and a weights card's licence, card and files
    (issue 17: the licence id is stamped into every record a card produces, whatever the command)."""
    out = []
    for record in records:
        record.run_id = record.run_id or run_id
        record.created = record.created or now_iso()
        record.env = record.env or environment()
        for key, value in _weights_card_info(record.model).items():
            record.info.setdefault(key, value)
        out.append(record)
    return out


def _weights_card_info(model: str) -> dict[str, Any]:
    """The card info of ``model`` when it names a weights card resolved in this process, else {}."""
    import sys

    registry = sys.modules.get("mfsbench.registry")  # nothing to stamp if no spec was ever resolved
    spec = registry.registered(model) if registry is not None else None
    return spec.weights_card.record_info() if spec is not None and spec.weights_card is not None else {}


def append_records(path: Path, records: Iterable[Record]) -> None:
    """Append records to a JSONL file, one flush per call, so a killed run keeps what it measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_records(path: Path) -> list[Record]:
    """Read a JSONL store; a corrupt line is an error naming the file and line.

    Raises:
        BadInputError: when the file is missing or a line is not a record.
    """
    if not path.is_file():
        raise BadInputError(
            f"no records at {path}: run `mfsbench flops`, `device` or `quality` with --out {path.parent} "
            "first, or pass --records FILE"
        )
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(Record.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise BadInputError(
                f"{path}:{number} is not a record ({exc}); remove that line or re-run the command"
            ) from None
    return records


def last_run(records: Sequence[Record], command: str, *, what: str, settings_key: str, wanted: dict[str, Any],
             options: Callable[[dict[str, Any]], str], store: Path) -> tuple[str, list[Record]]:
    """The run a ``--resume`` continues: the newest run of ``command`` in ``store``, id and records.

    Its finished cells are not measured again and new ones join its run id (so same-run ratios still
    pair). Refused when that run stored other settings under ``info[settings_key]``: measurements
    taken differently must not share a run or a table.

    Raises:
        BadInputError: when the store holds no such run, or its settings differ (naming both as options).
    """
    runs = [r for r in records if r.command == command]
    if not runs:
        raise BadInputError(f"nothing to resume: {store} holds no {what}; run without --resume")
    run_id = str(runs[-1].run_id)
    last = [r for r in runs if r.run_id == run_id]
    stored = last[0].info.get(settings_key)
    if stored != wanted:
        was = options(stored) if isinstance(stored, dict) else "settings it did not store"
        raise BadInputError(f"cannot resume run {run_id}: it was measured with {was}, this command asks for "
                            f"{options(wanted)}; repeat its options or run without --resume")
    return run_id, last
