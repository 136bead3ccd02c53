"""Results that work across nodes: one immutable Parquet file per unit, ``<url>/<fingerprint>.parquet``.

Why files and not the SQLite cache: SQLite cannot be shared between hosts (WAL needs one host), so
it stays the node-local cache, and what leaves a node is one file per finished unit. The file's
existence is the "done" marker: the driver skips published units (a killed driver resumes), and a
retried unit (its worker died after publishing) rewrites the same name with the same content, so
nothing is counted twice. Writes are atomic: a local folder gets ``<name>.tmp<pid>`` then
``os.replace``; an object store (any other fsspec URL: ``s3://``, ``gs://``, ``memory://``) gets
the whole object in one put, never an append.

A unit file holds rows of named tables (``table``, ``values`` as JSON, bytes as base64), so each
command decides what a unit carries (:mod:`mfsbench.quality.store` exports the SQLite rows of one
work item) and the reader can rebuild its cache from the folder alone.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mfsbench.errors import BadInputError
from mfsbench.optional import require

SUFFIX = ".parquet"
_NAME = re.compile(r"^[0-9a-f]{8,128}$")
_LOCAL = ("", "file", "local")


def _pyarrow() -> tuple[Any, Any]:
    pa = require("pyarrow", "pyarrow", "publishing unit results as Parquet")
    pq = require("pyarrow.parquet", "pyarrow", "publishing unit results as Parquet")
    return pa, pq


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def encode_rows(rows: Iterable[tuple[str, Sequence[Any]]]) -> list[tuple[str, str]]:
    """(table, values) → (table, JSON) with bytes as base64; floats keep every bit (repr round-trips)."""
    return [(table, json.dumps([_encode(v) for v in values])) for table, values in rows]


def decode_rows(rows: Iterable[tuple[str, str]]) -> list[tuple[str, tuple[Any, ...]]]:
    return [(table, tuple(_decode(v) for v in json.loads(text))) for table, text in rows]


class ResultFolder:
    """The published units under one URL (a local folder, ``file://``, or any fsspec URL)."""

    def __init__(self, url: str | os.PathLike[str]) -> None:
        text = str(url)
        scheme = text.split("://", 1)[0] if "://" in text else ""
        self.url = text
        self.local: Path | None = None
        if scheme in _LOCAL:
            self.local = Path(text.split("://", 1)[1] if scheme else text)
            try:
                self.local.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BadInputError(f"results folder {self.local} cannot be created ({exc}); "
                                    "pass a writable --results-url") from None
            self.fs, self.root = None, str(self.local)
        else:
            fsspec = require("fsspec", "fsspec", f"the results URL {text}")
            self.fs, self.root = fsspec.core.url_to_fs(text)
            self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a unit fingerprint (lowercase hex)")
        return f"{self.root.rstrip('/')}/{name}{SUFFIX}"

    def names(self) -> set[str]:
        """Fingerprints of every published unit (temporary files of a killed writer are not units)."""
        if self.local is not None:
            entries = [p.name for p in self.local.iterdir()] if self.local.is_dir() else []
        else:
            entries = [p.rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]
        return {e[: -len(SUFFIX)] for e in entries if e.endswith(SUFFIX) and _NAME.match(e[: -len(SUFFIX)])}

    def publish(self, name: str, rows: Iterable[tuple[str, Sequence[Any]]], meta: dict[str, Any]) -> None:
        """Write unit ``name`` atomically (whole file or nothing); republishing replaces it whole."""
        pa, pq = _pyarrow()
        encoded = encode_rows(rows)
        table = pa.table({"table": [t for t, _ in encoded], "values": [v for _, v in encoded]})
        header = json.dumps({"unit": name, **meta}, sort_keys=True)
        table = table.replace_schema_metadata({"mfsbench": header})
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        data = buffer.getvalue()
        final = self._path(name)
        if self.local is None:
            self.fs.pipe_file(final, data)  # one put: an object store never shows half an object
            return
        tmp = f"{final}.tmp{os.getpid()}"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)

    def read(self, name: str) -> tuple[list[tuple[str, tuple[Any, ...]]], dict[str, Any]]:
        """Unit ``name``'s rows and its metadata."""
        _, pq = _pyarrow()
        path = self._path(name)
        if self.local is not None:
            table = pq.read_table(path)
        else:
            with self.fs.open(path, "rb") as handle:
                table = pq.read_table(io.BytesIO(handle.read()))
        meta = json.loads((table.schema.metadata or {}).get(b"mfsbench", b"{}"))
        columns = table.to_pydict()
        return decode_rows(zip(columns["table"], columns["values"], strict=True)), meta
