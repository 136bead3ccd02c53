"""Every record as a pandas DataFrame: one row per record, flat columns, types a Parquet file keeps.

Records are nested (``metrics``, ``info``, ``env`` are dicts, some with dicts and lists inside) because
each command stores what it measured in its own terms. An analysis wants one table across commands
and runs, so nesting is flattened to dotted column names (``metrics.fps``, ``info.video.width``,
``env.packages.torch``), lists become JSON text, and a column whose values are of several kinds
(an ``info`` key that one command fills with a number and another with text) becomes JSON text too,
so that the same frame can be written to CSV and to Parquet without guessing. Nothing is renamed,
rounded or dropped: the JSONL store stays the source of truth, and this is a view of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfsbench.errors import BadInputError
from mfsbench.records import Record, read_records

if TYPE_CHECKING:
    import pandas as pd

#: Record fields that are already scalars, first in every frame, in this order.
SCALAR_COLUMNS = ("run_id", "created", "command", "model", "stage", "mode", "status", "error", "convention",
                  "schema")
#: Nested record fields, flattened under their own prefix, in this order.
NESTED_COLUMNS = ("input_shapes", "metrics", "info", "env")


def flatten(value: Any, prefix: str, into: dict[str, Any]) -> None:
    """Write ``value`` into ``into`` under dotted keys: dicts recurse, lists become JSON text."""
    if isinstance(value, dict):
        if not value:
            return
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}", into)
    elif isinstance(value, (list, tuple)):
        into[prefix] = json.dumps(list(value), sort_keys=True)
    else:
        into[prefix] = value


def record_row(record: Record) -> dict[str, Any]:
    """One record as one flat row (see the module docstring for the column names).

    The fields are read in place, not through ``dataclasses.asdict``, whose deep copy of every sample
    list was most of the time a report took to render; :func:`flatten` only reads them.
    """
    row = {name: getattr(record, name) for name in SCALAR_COLUMNS}
    for name in NESTED_COLUMNS:
        flatten(getattr(record, name), name, row)
    return row


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "other"


def _column_order(columns: Iterable[str]) -> list[str]:
    scalars = [c for c in SCALAR_COLUMNS if c in columns]
    nested = sorted((c for c in columns if c not in SCALAR_COLUMNS),
                    key=lambda c: (NESTED_COLUMNS.index(c.split(".", 1)[0]), c))
    return scalars + nested


def records_frame(records: Sequence[Record], *, sources: Sequence[str] | None = None,
                  exact_numbers: bool = False, as_recorded: bool = False) -> pd.DataFrame:
    """The records as a DataFrame; ``sources`` (one per record) adds a ``source`` column naming the store.

    Column types: all-number columns are float64 (integers stay exact below 2**53, which holds every
    count the suite records), all-boolean columns pandas' nullable ``boolean``, all-text columns
    ``string``, anything else JSON text; a missing value is a null, never 0 or "".

    ``exact_numbers`` keeps number columns as the Python values recorded (``object`` dtype, None for
    missing): the reports render from this frame and print each figure as its record holds it (a
    paper figure recorded as ``306`` stays ``306``, not ``306.0``).

    ``as_recorded`` keeps every column as the Python values recorded (``object`` dtype, None for
    missing, a list still as JSON text), a column of mixed kinds included: the device reports select
    from the whole store, where one ``info`` key may be a flag for one command and text for another,
    and must still print each cell's value as its record holds it.
    """
    pd = _pandas()
    rows = [record_row(record) for record in records]
    if sources is not None:
        if len(sources) != len(rows):
            raise ValueError("records_frame: one source per record")
        for row, source in zip(rows, sources, strict=True):
            row["source"] = source
    columns = _column_order({key for row in rows for key in row} - {"source"})
    if sources is not None:
        columns.append("source")
    data: dict[str, Any] = {}
    for name in columns:
        values = [row.get(name) for row in rows]
        kinds = {_kind(v) for v in values if v is not None}
        if as_recorded or (kinds == {"number"} and exact_numbers):
            data[name] = pd.array(values, dtype=object)
        elif kinds == {"number"}:
            data[name] = pd.array([float("nan") if v is None else float(v) for v in values], dtype="float64")
        elif kinds == {"bool"}:
            data[name] = pd.array(values, dtype="boolean")
        elif kinds <= {"text"}:
            data[name] = pd.array(values, dtype="string")
        else:
            data[name] = pd.array([None if v is None else json.dumps(v, sort_keys=True, default=str)
                                   for v in values], dtype="string")
    frame = pd.DataFrame(data, columns=columns)
    return frame


def read_results(stores: Sequence[Path]) -> pd.DataFrame:
    """Every record of every JSONL store as one frame, with a ``source`` column naming its store.

    Raises:
        BadInputError: a store is missing or holds a line that is not a record.
    """
    records: list[Record] = []
    sources: list[str] = []
    for store in stores:
        found = read_records(store)
        records += found
        sources += [str(store)] * len(found)
    return records_frame(records, sources=sources)


def write_table(frame: pd.DataFrame, out: Path) -> None:
    """Write ``frame`` as CSV or Parquet, chosen by the suffix, atomically (a temporary file renamed).

    Raises:
        BadInputError: the suffix is neither ``.csv`` nor ``.parquet``.
    """
    import os
    import tempfile

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise BadInputError(f"--out {out}: write a .csv or a .parquet file")
    if suffix == ".parquet":
        from mfsbench.optional import require

        require("pyarrow", "pyarrow", "Parquet output")
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=suffix, dir=out.parent)
    os.close(handle)
    try:
        if suffix == ".csv":
            frame.to_csv(temp, index=False)
        else:
            frame.to_parquet(temp, index=False)
        os.replace(temp, out)
    finally:
        Path(temp).unlink(missing_ok=True)


def _pandas() -> Any:
    """pandas, a core dependency, imported only when a table is asked for (it costs ~0.5 s)."""
    import pandas

    return pandas
