"""The one writer of report tables: a pandas DataFrame out as markdown, fixed-width text, CSV or JSON.

Reports select, order and reshape their rows with pandas (from :func:`mfsbench.results.records_frame`)
and hand the finished frame here, so that every table in ``reports/`` is written by the same code:
CSV exactly as Python's ``csv`` module writes it (minimal quoting, ``\\n`` line ends, a missing value
empty), JSON as the Python values the records hold.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


def csv_text(frame: pd.DataFrame) -> str:
    """The frame as CSV: header, one line per row, None empty (a NaN prints ``nan``, as ``csv`` does)."""
    return str(frame.astype(object).map(_blank_none).to_csv(index=False, lineterminator="\n", na_rep="nan"))


def json_text(frame: pd.DataFrame) -> str:
    """The frame as a JSON list of objects (columns in order), each value as recorded."""
    return json.dumps(frame.astype(object).to_dict("records"), indent=2)


def markdown_lines(frame: pd.DataFrame) -> list[str]:
    """A markdown table of a frame of text cells: header, ``|---|`` rule, one line per row."""
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    rows = frame.itertuples(index=False, name=None)
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return lines


def fixed_width(frame: pd.DataFrame) -> str:
    """A frame of text cells as left-aligned columns two spaces apart, a dashed rule under the header."""
    rows = frame.itertuples(index=False, name=None)
    table = [[str(c) for c in frame.columns], *([str(v) for v in row] for row in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column of a flat records frame as Python objects; a column that no record has is all None
    (a store from before a key was recorded still renders)."""
    if name in frame.columns:
        return frame[name].astype(object)
    import pandas

    return pandas.Series([None] * len(frame), index=frame.index, dtype=object)


def keyed_text(values: pd.Series) -> pd.Series:
    """A cell key part as text, as ``str(info.get(key, ""))`` gives it: a missing value is ``""``."""
    return values.map(lambda v: "" if v is None else str(v))


def newest_per_key(frame: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` whose key (the row of ``keys`` at the same index) is not repeated later, each
    in the place of its key's first row: a re-measured cell keeps its place in a table and shows its
    newest record."""
    if frame.empty:
        return frame
    names = list(keys.columns)
    first = keys.groupby(names, sort=False, dropna=False).ngroup()
    newest = keys.drop_duplicates(names, keep="last").index
    return frame.loc[sorted(newest, key=lambda position: first[position])]
