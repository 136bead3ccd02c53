"""Table 1 (complexity) rendered from ``flops`` records: terminal, markdown, CSV and JSON.

Layout follows the paper: one row per method, image-mode then video-mode params and FLOPs, each
measured value next to the paper's figure ("as reported") and the relative delta. Measured values
are rounded the way the paper rounds; the CSV keeps them unrounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mfsbench.records import Record
from mfsbench.report.frames import csv_text, fixed_width, json_text, markdown_lines
from mfsbench.report.numbers import delta_pct, format_delta, paper_round
from mfsbench.results import records_frame

if TYPE_CHECKING:
    import pandas as pd

MODES = ("image", "video")


@dataclass
class Table1Row:
    """One method: its mode records (or skipped/error records) and the paper's cells."""

    model: str
    display_name: str
    paper_row: str | None
    size: int | None
    provenance: str
    convention: str | None
    cells: dict[str, Record] = field(default_factory=dict)
    stages: dict[str, Record] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def measured(self, mode: str, metric: str) -> float | None:
        record = self.cells.get(mode)
        if record is None or record.status != "ok":
            return None
        return record.metrics.get(metric)

    def reported(self, mode: str, metric: str) -> float | None:
        record = self.cells.get(mode)
        if record is None:
            return None
        return record.info.get("paper", {}).get(metric)

    def status_text(self, mode: str) -> str:
        record = self.cells.get(mode)
        if record is None:
            return "not run"
        if record.status == "ok":
            return ""
        if record.info.get("cited_only"):
            return "cited"
        return "error" if record.status == "error" else "-"


def _selected(records: Sequence[Record], convention: str | None) -> pd.DataFrame:
    """The ``flops`` mode and stage records of one convention (or of none), as a frame whose index is
    each record's position in ``records``."""
    frame = records_frame(records, exact_numbers=True)
    if frame.empty:
        return frame
    keep = (frame["command"] == "flops").fillna(False) & (frame["mode"].notna() | frame["stage"].notna())
    if convention is not None:
        keep &= (frame["convention"].isna() | (frame["convention"] == convention)).fillna(False)
    return frame[keep.astype(bool)]


def _last_present(frame: pd.DataFrame, column: str) -> dict[str, Any]:
    """Per model, the last non-null (and non-empty) value of ``column`` in record order."""
    if column not in frame.columns:
        return {}
    values = frame[["model", column]].dropna()
    values = values[values[column] != ""]
    return dict(values.groupby("model", sort=False)[column].last())


def latest_rows(records: Sequence[Record], convention: str | None = None) -> list[Table1Row]:
    """The newest mode record per (model, mode) and stage record per (model, stage) for one convention,
    models in first-seen order; a row's labels come from its model's first record."""
    chosen = _selected(records, convention)
    if chosen.empty:
        return []
    is_stage = chosen["stage"].notna()
    modes = chosen[~is_stage]
    stages = chosen[is_stage]
    sizes = _last_present(modes, "info.size")
    conventions = _last_present(modes, "convention")
    rows: dict[str, Table1Row] = {}
    for position, model in chosen.groupby("model", sort=False).head(1)["model"].items():
        info = records[position].info
        rows[str(model)] = Table1Row(
            model=str(model),
            display_name=info.get("display_name", model),
            paper_row=info.get("paper_row"),
            size=sizes.get(model, info.get("size")),
            provenance=info.get("provenance", ""),
            convention=conventions.get(model, records[position].convention),
            notes=list(info.get("notes", [])),
        )
    # a cell keeps the place of its first record and the content of its last (later records replace)
    for part, key, attr in ((modes, "mode", "cells"), (stages, "stage", "stages")):
        last = part.drop_duplicates(["model", key], keep="last")
        newest = {(m, k): pos for pos, m, k in zip(last.index, last["model"], last[key], strict=True)}
        first = part.drop_duplicates(["model", key], keep="first")
        for model, name in zip(first["model"], first[key], strict=True):
            getattr(rows[str(model)], attr)[str(name)] = records[newest[(model, name)]]
    return list(rows.values())


def conventions_in(records: Sequence[Record]) -> list[str]:
    seen: list[str] = []
    for record in records:
        if record.command == "flops" and record.convention and record.convention not in seen:
            seen.append(record.convention)
    return seen


_COLUMNS = (
    ("image", "params_m", "I Params (M)"),
    ("image", "gmacs", "I FLOPs (G)"),
    ("video", "params_m", "V Params (M)"),
    ("video", "gmacs", "V FLOPs (G)"),
)


def method_label(row: Table1Row) -> str:
    """The paper's row label, except for re-implementations, which must say that they are one."""
    if row.paper_row and row.provenance != "reimplementation":
        return row.paper_row
    return row.display_name


def _header() -> list[str]:
    head = ["Method", "Model", "Size", "Kind"]
    for _, _, title in _COLUMNS:
        head += [title, "paper", "Δ"]
    return head


def _status_text(status: Any, cited: Any) -> str:
    """What a cell without a measured value shows: cited, error, or '-' (skipped)."""
    if status == "ok":
        return ""
    if not _missing(cited) and cited:
        return "cited"
    return "error" if status == "error" else "-"


def _missing(value: Any) -> bool:
    return value is None or value is _pandas().NA or (isinstance(value, float) and math.isnan(value))


def _pandas() -> Any:
    """pandas, imported when a table is rendered (it costs ~0.5 s, which ``--help`` should not pay)."""
    import pandas

    return pandas


def _body_frame(rows: Sequence[Table1Row]) -> pd.DataFrame:
    """The displayed table: the cell frame pivoted to one line per method, mode by metric, as text."""
    pd = _pandas()
    cells = cells_frame(rows)
    if cells.empty:
        cells = pd.DataFrame(columns=["model", "mode", "status", "cited_only", *_PAPER_CSV,
                                      *_PAPER_CSV.values()])
    cells["shown"] = [_status_text(s, c) for s, c in zip(cells["status"], cells["cited_only"], strict=True)]
    wide = cells.pivot(index="model", columns="mode").reindex([row.model for row in rows])
    columns: dict[str, list[str]] = {
        "Method": [method_label(row) for row in rows],
        "Model": [row.model for row in rows],
        "Size": [str(row.size or "-") for row in rows],
        "Kind": [row.provenance for row in rows],
    }
    body = pd.DataFrame(columns)
    for index, (mode, metric, title) in enumerate(_COLUMNS):
        def column(name: str, mode: str = mode) -> list[Any]:
            return list(wide[(name, mode)]) if (name, mode) in wide.columns else [None] * len(rows)

        measured, reported = column(metric), column(_PAPER_CSV[metric])
        shown, present = column("shown"), column("status")
        # a method without this cell (NaN from the pivot) has neither value; a cell keeps what it recorded
        measured = [m if not _missing(p) else None for m, p in zip(measured, present, strict=True)]
        reported = [r if not _missing(p) else None for r, p in zip(reported, present, strict=True)]
        body[f"{title}"] = [
            paper_round(m) if m is not None else ((s or "-") if not _missing(p) else "not run")
            for m, s, p in zip(measured, shown, present, strict=True)
        ]
        body[f"paper {index}"] = [paper_round(r) for r in reported]
        body[f"Δ {index}"] = [format_delta(delta_pct(m, r)) for m, r in zip(measured, reported, strict=True)]
    body.columns = _header()
    return body


def render_terminal(rows: Sequence[Table1Row]) -> str:
    """A fixed-width table for the terminal."""
    return fixed_width(_body_frame(rows))


def footnotes(rows: Sequence[Table1Row]) -> list[str]:
    """Definitions, conventions, per-model notes and errors: every statement a number depends on."""
    notes: list[str] = []
    definitions: dict[str, set[str]] = {}
    conventions: dict[str, str] = {}
    zero_ops: dict[str, int] = {}
    for row in rows:
        for mode, record in row.cells.items():
            if record.status == "error":
                notes.append(f"**{row.model} ({mode})**: error — {record.error}")
            definition = record.info.get("params_definition")
            if definition:
                definitions.setdefault(f"{mode}: {definition}", set()).add(row.model)
            if record.convention and record.info.get("convention_description"):
                conventions[record.convention] = record.info["convention_description"]
        for note in row.notes:
            notes.append(f"**{row.model}**: {note}")
    for stage_ops in _stage_unsupported(rows):
        for op, n in stage_ops.items():
            zero_ops[op] = zero_ops.get(op, 0) + n
    head = [f"Convention `{name}`: {text}." for name, text in conventions.items()]
    head.append(
        'FLOPs are fvcore "flops", i.e. multiply-accumulates, as in the paper; image mode = identity '
        "stage + frame stage, video mode = frame stage only (identity computed once per source)."
    )
    head += [
        f"Params ({text}) — {', '.join(sorted(models))}." for text, models in sorted(definitions.items())
    ]
    if zero_ops:
        ops = ", ".join(f"{op} ×{n}" for op, n in sorted(zero_ops.items()))
        head.append(f"Ops with no fvcore handle, counted as 0 (recorded, not dropped): {ops}.")
    head.append('"cited": the paper\'s figures only; no public architecture exists to measure.')
    return head + notes


def _stage_unsupported(rows: Sequence[Table1Row]) -> list[dict[str, int]]:
    return [r.info.get("unsupported_ops", {}) for row in rows for r in row.stages.values()]


def render_markdown(rows: Sequence[Table1Row], title: str) -> str:
    lines = [f"# {title}", "", *markdown_lines(_body_frame(rows))]
    lines += ["", "## Notes", ""]
    lines += [f"- {note}" for note in footnotes(rows)]
    return "\n".join(lines) + "\n"


CSV_FIELDS = (
    "model",
    "method",
    "mode",
    "size",
    "provenance",
    "convention",
    "status",
    "params_m",
    "params_stored_m",
    "gmacs",
    "paper_params_m",
    "paper_gflops",
    "delta_params_pct",
    "delta_gmacs_pct",
    "error",
)


#: CSV column → (record column it comes from, taken only when the record is ``ok``).
_CELL_SOURCES = {
    "params_m": ("metrics.params_m", True),
    "params_stored_m": ("metrics.params_stored_m", True),
    "gmacs": ("metrics.gmacs", True),
    "paper_params_m": ("info.paper.params_m", False),
    "paper_gflops": ("info.paper.gflops", False),
    "cited_only": ("info.cited_only", False),
}
#: The CSV column of the paper's figure for each displayed metric.
_PAPER_CSV = {"params_m": "paper_params_m", "gmacs": "paper_gflops"}


def cells_frame(rows: Sequence[Table1Row]) -> pd.DataFrame:
    """One line per measured cell (method × mode, methods in row order, image before video): the
    records of the cells, flattened, with the method's labels joined and the deltas computed."""
    pd = _pandas()
    records = [record for row in rows for record in row.cells.values()]
    frame = records_frame(records, exact_numbers=True)
    if frame.empty:
        frame = pd.DataFrame(columns=["model", "mode", "status", "convention", "error"])
    labels = pd.DataFrame({"model": [row.model for row in rows], "order": range(len(rows)),
                           "method": [method_label(row) for row in rows], "size": [row.size for row in rows],
                           "provenance": [row.provenance for row in rows]}, dtype=object)
    frame = frame.merge(labels, on="model", how="left", validate="many_to_one")
    frame["mode_order"] = frame["mode"].map(MODES.index)
    frame = frame.sort_values(["order", "mode_order"], kind="stable").reset_index(drop=True)
    ok = list(frame["status"] == "ok")

    def objects(values: list[Any]) -> pd.Series:  # as recorded: no int → float, None stays None
        return pd.Series(values, index=frame.index, dtype=object)

    for name, (source, only_ok) in _CELL_SOURCES.items():
        values = list(frame[source]) if source in frame.columns else [None] * len(frame)
        kept = [v if not only_ok or good else None for v, good in zip(values, ok, strict=True)]
        frame[name] = objects(kept)
    for delta, measured, paper in (("delta_params_pct", "params_m", "paper_params_m"),
                                   ("delta_gmacs_pct", "gmacs", "paper_gflops")):
        frame[delta] = objects([delta_pct(m, p) for m, p in zip(frame[measured], frame[paper], strict=True)])
    for name in ("error", "convention", "size"):  # text columns hold pd.NA for a missing value
        frame[name] = objects([None if _missing(v) else v for v in frame[name]])
    return frame.astype(object)


def csv_rows(rows: Sequence[Table1Row]) -> list[dict[str, object]]:
    return list(cells_frame(rows)[list(CSV_FIELDS)].to_dict("records"))


def render_csv(rows: Sequence[Table1Row]) -> str:
    return csv_text(cells_frame(rows)[list(CSV_FIELDS)])


def render_json(rows: Sequence[Table1Row]) -> str:
    return json_text(cells_frame(rows)[list(CSV_FIELDS)])
