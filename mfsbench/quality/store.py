"""The on-disk cache of a quality run (SQLite, WAL): what makes runs resumable, shardable and re-renderable.

Everything a run computes is stored under keys that say what it depends on, so a value is reused
only when it would be recomputed identically:

* ``protocol``: the protocol card's fingerprint (frames, detector, policies);
* ``row``: what produced the swapped frames, e.g. ``mobilefaceswap_224@random-weights:0/image``,
  ``mobilefaceswap_224@<sha256>/video``, ``ffpp:Deepfakes@c23``, ``identity_oracle``;
* ``evaluator`` / ``evalset``: evaluator name + weights sha256 (``dlib_resnet128@<sha256>``).

Every table has a UNIQUE primary key and every insert is ``INSERT OR IGNORE`` (or an upsert where a
later value must win), so a run killed with SIGKILL and run again adds no duplicate row; a work
item (one row × one target video) is written in **one transaction**, so it is either all there or
not at all. :func:`merge` copies shard stores into one with the same statements.

A :meth:`QualityStore.transaction` collects its writes in memory and commits them in one short
``BEGIN IMMEDIATE`` at its end, so the write lock is held for milliseconds, never for the minutes
of swapping and evaluating an item: another process (``mfsbench report``, a merge) reading or
writing the same file waits at most that long (SQLite's busy timeout, :data:`BUSY_TIMEOUT_S`).
Reads inside a transaction see what was committed before it, not its own pending writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.quality.plan import PREPARE_ROW

#: How long a statement waits for another process's write transaction before "database is locked".
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 2  # 2: frame_results.top1_id (the retrieved identity, for grouped and target rates)
TARGET_ROW = "__target__"
GALLERY_ROW = "__gallery__"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    protocol TEXT, video TEXT, status TEXT NOT NULL, reason TEXT, n_frames INTEGER, stamp TEXT,
    PRIMARY KEY (protocol, video));
CREATE TABLE IF NOT EXISTS detections (
    protocol TEXT, video TEXT, frame INTEGER, found INTEGER NOT NULL, score REAL, box BLOB, landmarks BLOB,
    PRIMARY KEY (protocol, video, frame));
CREATE TABLE IF NOT EXISTS selections (
    protocol TEXT, video TEXT, role TEXT, value TEXT NOT NULL,
    PRIMARY KEY (protocol, video, role));
CREATE TABLE IF NOT EXISTS outputs (
    protocol TEXT, row TEXT, evaluator TEXT, target TEXT, source TEXT, frame INTEGER, kind TEXT,
    value BLOB NOT NULL,
    PRIMARY KEY (protocol, row, evaluator, target, source, frame, kind));
CREATE TABLE IF NOT EXISTS frame_results (
    protocol TEXT, row TEXT, evalset TEXT, target TEXT, source TEXT, frame INTEGER,
    status TEXT NOT NULL, reason TEXT, top1 INTEGER, cos REAL, pose_err REAL, top1_id TEXT,
    PRIMARY KEY (protocol, row, evalset, target, source, frame));
CREATE TABLE IF NOT EXISTS items (
    protocol TEXT, row TEXT, evalset TEXT, target TEXT, source TEXT,
    status TEXT NOT NULL, reason TEXT, frames_ok INTEGER, frames_skipped INTEGER,
    PRIMARY KEY (protocol, row, evalset, target, source));
CREATE TABLE IF NOT EXISTS timings (
    protocol TEXT, row TEXT, evalset TEXT, target TEXT, source TEXT, stage TEXT,
    seconds REAL NOT NULL, calls INTEGER NOT NULL,
    PRIMARY KEY (protocol, row, evalset, target, source, stage));
CREATE TABLE IF NOT EXISTS rows (
    protocol TEXT, row TEXT, evalset TEXT, position INTEGER, info TEXT NOT NULL,
    PRIMARY KEY (protocol, row, evalset));
CREATE TABLE IF NOT EXISTS derived (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: Tables copied by :func:`merge`, in dependency-free order. ``derived`` (values recomputable from
#: these, keyed by their inputs' digest) is neither merged nor counted.
TABLES = ("meta", "videos", "detections", "selections", "outputs", "frame_results", "items", "timings",
          "rows")


def encode(array: np.ndarray) -> bytes:
    """Arrays are stored as little-endian float64 bytes: exact, and independent of the evaluator's dtype."""
    return np.ascontiguousarray(array, dtype="<f8").tobytes()


def decode(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").copy()


@dataclass(frozen=True)
class FrameResult:
    """One evaluated (or skipped) frame of one work item."""

    frame: int
    status: str  # "ok" | "skipped"
    reason: str | None = None
    top1: bool | None = None
    cos: float | None = None
    pose_err: float | None = None
    top1_id: str | None = None  # the gallery identity retrieved (video-level top-1: top1_id == source)


class QualityStore:
    """One SQLite file; open it, use it from one thread, close it (or use ``with``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=BUSY_TIMEOUT_S)
            self.db.execute("PRAGMA synchronous=NORMAL")
            present = {n for (n,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if self._schema() is None or not present >= {*TABLES, "derived"}:
                # a new (or older, smaller) file; a complete one is opened without writing to it
                self.db.execute("PRAGMA journal_mode=WAL")
                with self._immediate():
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        self.db.execute(statement)
                    self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise BadInputError(f"cannot use {self.path} as a quality cache ({exc}); "
                                "pass another --cache file or delete this one") from None
        schema = self._schema()
        if schema == "1":  # schema 2 only adds a column; schema-1 rows keep NULL (their cards are older)
            with self._immediate():
                self.db.execute("ALTER TABLE frame_results ADD COLUMN top1_id TEXT")
                self.db.execute("UPDATE meta SET value='2' WHERE key='schema'")
            schema = "2"
        if schema != str(SCHEMA_VERSION):
            raise BadInputError(f"{self.path} is a schema-{schema} cache, this mfsbench writes schema "
                                f"{SCHEMA_VERSION}; pass a new --cache file")
        self._pending: list[tuple[str, list[tuple[Any, ...]]]] | None = None

    def _schema(self) -> str | None:
        """The file's schema version, or None for a file without the ``meta`` table yet."""
        known = self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if known is None:
            return None
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        return None if row is None else str(row[0])

    @contextmanager
    def _immediate(self) -> Iterator[None]:
        """A real SQLite write transaction, for statements run directly (schema, migration, merge)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> QualityStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together at the end, or (killed, raised) not at all. Nests.

        The writes wait in memory and go to SQLite in one short ``BEGIN IMMEDIATE`` ... ``COMMIT``
        when the outermost transaction ends (see the module docstring for why).
        """
        if self._pending is not None:
            yield
            return
        self._pending = []
        try:
            yield
            pending = self._pending
        finally:
            self._pending = None
        if pending:
            with self._immediate():
                for sql, rows in pending:
                    self.db.executemany(sql, rows)

    def _write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run a write now, or keep it for the end of the current transaction."""
        if self._pending is not None:
            self._pending.append((sql, list(rows)))
        else:
            self.db.executemany(sql, rows)

    def put_meta(self, key: str, value: Any) -> None:
        """Run facts the report needs when re-rendered from the store alone (protocol card, evaluators)."""
        self._write("INSERT OR REPLACE INTO meta VALUES (?,?)", [(key, json.dumps(value, sort_keys=True))])

    def meta(self, key: str) -> Any | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    # ------------------------------------------------------------------------------- videos, faces

    def put_video(self, protocol: str, video: str, status: str, *, reason: str | None,
                  n_frames: int | None, stamp: str | None = None) -> None:
        """``stamp`` (size and mtime of the file) lets a later run notice that the dataset changed."""
        self._write("INSERT OR REPLACE INTO videos VALUES (?,?,?,?,?,?)",
                    [(protocol, video, status, reason, n_frames, stamp)])

    def video(self, protocol: str, video: str) -> tuple[str, str | None, int | None, str | None] | None:
        row = self.db.execute(
            "SELECT status, reason, n_frames, stamp FROM videos WHERE protocol=? AND video=?",
            (protocol, video)).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def put_detection(self, protocol: str, video: str, frame: int, face: Any | None) -> None:
        """``face`` is a :class:`mfsbench.faces.Face` or ``None`` for a frame without a face."""
        if face is None:
            values: tuple[Any, ...] = (protocol, video, frame, 0, None, None, None)
        else:
            values = (protocol, video, frame, 1, face.score, encode(face.box), encode(face.landmarks5))
        self._write("INSERT OR IGNORE INTO detections VALUES (?,?,?,?,?,?,?)", [values])

    def detections(self, protocol: str, video: str) -> dict[int, Any | None]:
        """Cached detections of a video: frame → Face, or None where no face was found."""
        from mfsbench.faces.types import Face

        found: dict[int, Any | None] = {}
        for frame, ok, score, box, lmk in self.db.execute(
            "SELECT frame, found, score, box, landmarks FROM detections WHERE protocol=? AND video=?",
            (protocol, video),
        ):
            found[frame] = Face(decode(box), score, decode(lmk).reshape(5, 2)) if ok else None
        return found

    def put_selection(self, protocol: str, video: str, role: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO selections VALUES (?,?,?,?)",
                    [(protocol, video, role, json.dumps(value, sort_keys=True))])

    def selection(self, protocol: str, video: str, role: str) -> Any | None:
        row = self.db.execute("SELECT value FROM selections WHERE protocol=? AND video=? AND role=?",
                              (protocol, video, role)).fetchone()
        return None if row is None else json.loads(row[0])

    # ---------------------------------------------------------------------------- evaluator outputs

    def put_output(self, protocol: str, row: str, evaluator: str, *, target: str, source: str, frame: int,
                   kind: str, value: np.ndarray) -> None:
        self._write("INSERT OR IGNORE INTO outputs VALUES (?,?,?,?,?,?,?,?)",
                    [(protocol, row, evaluator, target, source, frame, kind, encode(value))])

    def output(self, protocol: str, row: str, evaluator: str, *, target: str, source: str, frame: int,
               kind: str) -> np.ndarray | None:
        found = self.db.execute(
            "SELECT value FROM outputs WHERE protocol=? AND row=? AND evaluator=? AND target=? AND source=? "
            "AND frame=? AND kind=?", (protocol, row, evaluator, target, source, frame, kind)).fetchone()
        return None if found is None else decode(found[0])

    def outputs(self, protocol: str, row: str, evaluator: str,
                kind: str) -> dict[tuple[str, str, int], np.ndarray]:
        """All outputs of one kind for a row: (target, source, frame) → array."""
        return {(t, s, f): decode(v) for t, s, f, v in self.db.execute(
            "SELECT target, source, frame, value FROM outputs WHERE protocol=? AND row=? AND evaluator=? "
            "AND kind=?", (protocol, row, evaluator, kind))}

    # -------------------------------------------------------------------------------- derived values

    def put_derived(self, key: str, value: Any) -> None:
        """A value computed from stored data (a set distance), keyed by a digest of its inputs."""
        self._write("INSERT OR REPLACE INTO derived VALUES (?,?)", [(key, json.dumps(value))])

    def derived(self, key: str) -> Any | None:
        row = self.db.execute("SELECT value FROM derived WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    # ------------------------------------------------------------------------------- work items

    def item_done(self, protocol: str, row: str, evalset: str, target: str, source: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM items WHERE protocol=? AND row=? AND evalset=? AND target=? AND source=?",
            (protocol, row, evalset, target, source)).fetchone() is not None

    def put_item(self, protocol: str, row: str, evalset: str, *, target: str, source: str, status: str,
                 reason: str | None, results: Sequence[FrameResult], timings: dict[str, tuple[float, int]],
                 planned: int | None = None) -> None:
        """Write one finished work item (its frames, timings and status) in one transaction.

        ``planned`` is the number of frames the item should have had; frames without a result (an
        item skipped as a whole) count as skipped.
        """
        with self.transaction():
            self._write(
                "INSERT OR IGNORE INTO frame_results VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(protocol, row, evalset, target, source, r.frame, r.status, r.reason,
                  None if r.top1 is None else int(r.top1), r.cos, r.pose_err, r.top1_id) for r in results])
            self._write(
                "INSERT OR IGNORE INTO timings VALUES (?,?,?,?,?,?,?,?)",
                [(protocol, row, evalset, target, source, stage, s, n) for stage, (s, n) in timings.items()])
            ok = sum(r.status == "ok" for r in results)
            total = max(len(results), planned or 0)
            self._write("INSERT OR IGNORE INTO items VALUES (?,?,?,?,?,?,?,?,?)",
                        [(protocol, row, evalset, target, source, status, reason, ok, total - ok)])

    def put_row(self, protocol: str, row: str, evalset: str, position: int, info: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO rows VALUES (?,?,?,?,?)",
                    [(protocol, row, evalset, position, json.dumps(info, sort_keys=True))])

    # ---------------------------------------------------------------------------------- reading

    def rows(self, protocol: str | None = None) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(protocol, row, evalset, info) in the order the rows were declared."""
        query = "SELECT protocol, row, evalset, info FROM rows"
        args: tuple[Any, ...] = ()
        if protocol is not None:
            query += " WHERE protocol=?"
            args = (protocol,)
        ordered = self.db.execute(query + " ORDER BY position, row", args)
        return [(p, r, e, json.loads(i)) for p, r, e, i in ordered]

    def frame_results(self, protocol: str, row: str, evalset: str) -> list[tuple[str, str, FrameResult]]:
        return [(t, s, FrameResult(f, st, rs, None if top is None else bool(top), cos, pose, top_id))
                for t, s, f, st, rs, top, cos, pose, top_id in self.db.execute(
                    "SELECT target, source, frame, status, reason, top1, cos, pose_err, top1_id "
                    "FROM frame_results WHERE protocol=? AND row=? AND evalset=? "
                    "ORDER BY target, source, frame",
                    (protocol, row, evalset))]

    def items(self, protocol: str, row: str,
              evalset: str) -> list[tuple[str, str, str, str | None, int, int]]:
        return list(self.db.execute(
            "SELECT target, source, status, reason, frames_ok, frames_skipped FROM items "
            "WHERE protocol=? AND row=? AND evalset=? ORDER BY target, source", (protocol, row, evalset)))

    def timings(self, protocol: str) -> dict[str, tuple[float, int]]:
        """Seconds and calls per stage, summed over every work item of the protocol."""
        return {stage: (float(s), int(n)) for stage, s, n in self.db.execute(
            "SELECT stage, SUM(seconds), SUM(calls) FROM timings WHERE protocol=? GROUP BY stage",
            (protocol,))}

    def bad_videos(self, protocol: str) -> list[tuple[str, str]]:
        return [(v, r or "") for v, r in self.db.execute(
            "SELECT video, reason FROM videos WHERE protocol=? AND status!='ok' ORDER BY video", (protocol,))]

    def unit_rows(self, protocol: str, evalset: str, row: str, target: str,
                  source: str) -> list[tuple[str, tuple[Any, ...]]]:
        """Every stored row one work item's report needs, as (table, values): what a unit publishes.

        The item itself (its frames, timings, status and evaluator outputs), the run header and
        Table 2's rows, and what the item stands on: both videos' preparation (status, detections,
        selections, the target-side outputs) and both videos' gallery entries. The union over a
        run's units rebuilds a cache that renders the same report as the cache that computed them
        (:meth:`import_rows`; shared rows are identical in every unit and inserted once).
        """
        videos = (target, source)
        queries: list[tuple[str, str, tuple[Any, ...]]] = [
            ("meta", "key=?", (f"run:{protocol}:{evalset}",)),
            ("rows", "protocol=? AND evalset=?", (protocol, evalset)),
            ("videos", "protocol=? AND video IN (?,?)", (protocol, *videos)),
            ("detections", "protocol=? AND video IN (?,?)", (protocol, *videos)),
            ("selections", "protocol=? AND video IN (?,?)", (protocol, *videos)),
            ("outputs", "protocol=? AND row IN (?,?) AND target IN (?,?) AND source IN ('', 'gallery')",
             (protocol, TARGET_ROW, GALLERY_ROW, *videos)),
            ("items", "protocol=? AND row=? AND target IN (?,?)", (protocol, PREPARE_ROW, *videos)),
            ("timings", "protocol=? AND row=? AND target IN (?,?)", (protocol, PREPARE_ROW, *videos)),
        ]
        item = "protocol=? AND row=? AND evalset=? AND target=? AND source=?"
        queries += [(table, item, (protocol, row, evalset, target, source))
                    for table in ("frame_results", "items", "timings")]
        queries.append(("outputs", "protocol=? AND row=? AND target=? AND source=?",
                        (protocol, row, target, source)))
        found: list[tuple[str, tuple[Any, ...]]] = []
        for table, where, args in queries:
            found += [(table, tuple(values)) for values in
                      self.db.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY 1, 2", args)]
        return found

    def import_rows(self, rows: Iterable[tuple[str, Sequence[Any]]]) -> int:
        """Insert published rows (``INSERT OR IGNORE``: a row already here is kept), in one commit.

        Returns how many rows were new.

        Raises:
            BadInputError: a table this cache does not have (a unit file of another kind).
        """
        grouped: dict[str, list[tuple[Any, ...]]] = {}
        for table, values in rows:
            if table not in TABLES:
                raise BadInputError(f"a published unit holds rows of {table!r}, not a quality cache table; "
                                    "pass the --results-url of a quality run")
            grouped.setdefault(table, []).append(tuple(values))
        before = self.db.total_changes
        with self._immediate():
            for table, values in grouped.items():
                marks = ",".join("?" * len(values[0]))
                self.db.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", values)
        return self.db.total_changes - before

    def counts(self) -> dict[str, int]:
        """Rows per table: what the resume test compares."""
        return {t: self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def merge(out: str | Path, stores: Iterable[str | Path]) -> dict[str, int]:
    """Copy every row of ``stores`` into ``out`` (created if needed); returns ``out``'s row counts.

    Shards compute disjoint work items and identical shared values (detections, gallery), so
    ``INSERT OR IGNORE`` is a correct union; merging the same shard twice changes nothing.

    Raises:
        BadInputError: a shard that is missing or not a quality cache.
    """
    paths = [Path(p) for p in stores]
    for path in paths:
        if not path.is_file():
            raise BadInputError(f"shard store not found: {path}; pass the --cache files of the shard runs")
    with QualityStore(out) as target:
        for path in paths:
            if path.resolve() == target.path.resolve():
                continue
            QualityStore(path).close()  # validates the schema before attaching
            target.db.execute("ATTACH DATABASE ? AS shard", (str(path),))
            try:
                with target._immediate():
                    for table in TABLES:
                        target.db.execute(f"INSERT OR IGNORE INTO {table} SELECT * FROM shard.{table}")
            finally:
                target.db.execute("DETACH DATABASE shard")
        return target.counts()
