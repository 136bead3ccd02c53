"""A quality run as engine units (:mod:`mfsbench.engine`): one unit per work item, published as a file.

Why: ``--shard i/n`` and one SQLite file make one machine the limit. Here each work item
(target × source × row: the cache key of the store) is a unit that any worker can run:

* the worker builds the evaluators, the dataset view and its runner **once per process**, from
  paths and settings (:class:`QualityUnitTask` is small and picklable; models never travel);
* it computes the item into a **node-local** SQLite cache (``--node-cache``; SQLite cannot be shared
  across hosts), then publishes every stored row the item's report needs
  (:meth:`~mfsbench.quality.store.QualityStore.unit_rows`) as ``<results-url>/<fingerprint>.parquet``;
* the driver skips published units (a killed driver resumes where it stopped), then imports the
  folder into its own cache (``INSERT OR IGNORE``) and renders Table 2 with the same code as a local
  run, so the tables agree exactly.

A worker killed after computing but before publishing leaves the item in its node cache: the retry
finds it there and only publishes. A unit published twice (its worker died after the rename)
replaces the file with the same content. Nothing is lost or counted twice.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfsbench.engine import maybe_kill_self, pin_threads, worker_memo
from mfsbench.engine.publish import ResultFolder
from mfsbench.errors import BadInputError

#: ``--node-cache`` may name the host, so one shared folder holds one SQLite file per node.
HOST_FIELD = "{host}"


def unit_name(fingerprint: str, evalset: str, unit: Sequence[str]) -> str:
    """The published file's name: a digest of everything the item's result depends on."""
    target, source, row = unit
    key = json.dumps([fingerprint, evalset, row, target, source])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class QualityUnitTask:
    """What a worker needs to run any unit of one quality run: paths and settings, no models."""

    root: str
    splits_dir: str
    protocol: Any
    rows: tuple[Any, ...]
    evaluators: str  # "official" | "offline"
    evaluator_paths: tuple[tuple[str, str | None], ...]
    subset: str
    node_cache: str
    results_url: str
    info_json: str = "{}"
    #: intra-op threads of the driver (:func:`~mfsbench.engine.pin_threads`): the same digits anywhere
    threads: int = 1

    def ray_options(self, unit: Sequence[str]) -> dict[str, Any]:
        """A unit reserves as many CPU slots as the threads it runs (no oversubscribed workers)."""
        return {"num_cpus": self.threads}

    def memo_key(self) -> str:
        """One worker per distinct task per process (a new run with other rows builds a new one)."""
        payload = [self.root, self.splits_dir, self.protocol.fingerprint(), [r.key for r in self.rows],
                   self.evaluators, self.evaluator_paths, self.subset, self.node_cache, self.info_json,
                   self.threads]
        return hashlib.sha256(json.dumps(payload, default=str).encode("utf-8")).hexdigest()

    def _build(self) -> Any:
        """The runner on this node's cache, its header written (built once per worker process)."""
        from mfsbench.quality.evaluators import build_evaluators
        from mfsbench.quality.ffpp import FFppTree
        from mfsbench.quality.runner import QualityRunner
        from mfsbench.quality.store import QualityStore

        paths = {k: Path(v) if v else None for k, v in self.evaluator_paths}
        evaluators = build_evaluators(self.evaluators, **paths, flip_concat=self.protocol.id_flip_concat,
                                      fid_crop_size=self.protocol.fid_crop_size)
        tree = FFppTree(Path(self.root), Path(self.splits_dir), self.protocol.compression)
        store = QualityStore(node_cache_path(self.node_cache))
        runner = QualityRunner(protocol=self.protocol, tree=tree, store=store, rows=list(self.rows),
                               evaluators=evaluators, subset=self.subset, progress=False,
                               info=json.loads(self.info_json))
        with store.transaction():
            runner.write_header()
        return runner, ResultFolder(self.results_url)

    def __call__(self, unit: Sequence[str]) -> dict[str, Any]:
        """Compute (or find in the node cache) one work item and publish it; returns its summary."""
        pin_threads(self.threads)  # before building: a reused worker may have run another count
        runner, folder = worker_memo(self.memo_key(), self._build)
        maybe_kill_self()
        target, source, row = unit
        summary = runner.run_unit(target, source, row)
        ran_threads = pin_threads(None)  # read back after the work: what it ran with, not what was asked
        name = unit_name(runner.fp, runner.evalset, unit)
        rows = runner.store.unit_rows(runner.fp, runner.evalset, row, target, source)
        folder.publish(name, rows, {"command": "quality", "protocol": runner.fp, "evalset": runner.evalset,
                                    "row": row, "target": target, "source": source,
                                    "host": socket.gethostname(), "threads": ran_threads})
        return {"name": name, "computed": bool(summary.items_run), "frames": summary.frames_evaluated,
                "seconds": summary.seconds, "timings": summary.timings, "threads": ran_threads}


def fit_unit_threads(engine: Any, threads: int, *, explicit: bool) -> int:
    """The threads a unit runs with on ``engine``: ``threads`` where a node can hold them.

    Why: Ray would wait for ever on a task no node can hold. An explicit ``--threads`` is refused;
    the driver's own count (no ``--threads``) falls back to the largest node's CPUs with one warning
    line, since a cluster of small nodes is a normal setup (the count that ran is recorded).

    Raises:
        BadInputError: an explicit count larger than every node, naming the count that fits.
    """
    nodes = getattr(engine, "nodes", None)
    if nodes is None:  # the local engine runs units here, with this process's threads
        return threads
    from mfsbench.engine.timing import largest_node_cpus

    largest = largest_node_cpus(nodes())
    if largest >= threads:
        return threads
    if explicit:
        raise BadInputError(f"a quality unit runs {threads} thread(s) (--threads) but the largest Ray node "
                            f"has {largest} CPU(s); pass --threads {max(1, largest)} (the last digits may "
                            "then differ from a local run with more threads)")
    fitted = max(1, largest)
    sys.stderr.write(f"warning: quality units run {fitted} thread(s), the largest Ray node's CPUs (this "
                     f"process has {threads}); float results may differ from a local run in their last "
                     "digits: pass --threads N to choose the count\n")
    return fitted


def node_cache_path(template: str) -> Path:
    """``--node-cache`` with ``{host}`` replaced by this node's host name."""
    return Path(template.replace(HOST_FIELD, socket.gethostname()))


def import_units(store: Any, folder: ResultFolder, names: Iterable[str]) -> int:
    """Read published units into ``store`` (their shared rows land once); returns new rows."""
    added = 0
    for name in sorted(names):
        rows, _meta = folder.read(name)
        added += store.import_rows(rows)
    return added
