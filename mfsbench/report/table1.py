"""Table 1 (complexity) rendered from ``flops`` records: terminal, markdown, CSV and JSON.

Layout follows the paper: one row per method, image-mode then video-mode params and FLOPs, each
measured value next to the paper's figure ("as reported") and the relative delta. Measured values
are rounded the way the paper rounds; the CSV keeps them unrounded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from mfsbench.records import Record
from mfsbench.report.numbers import delta_pct, format_delta, paper_round

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


def latest_rows(records: Sequence[Record], convention: str | None = None) -> list[Table1Row]:
    """Collect the newest mode record per (model, mode) for one convention, in first-seen order."""
    rows: dict[str, Table1Row] = {}
    for record in records:
        if record.command != "flops" or (record.mode is None and record.stage is None):
            continue
        if convention is not None and record.convention not in (convention, None):
            continue
        info = record.info
        row = rows.get(record.model)
        if row is None:
            row = rows[record.model] = Table1Row(
                model=record.model,
                display_name=info.get("display_name", record.model),
                paper_row=info.get("paper_row"),
                size=info.get("size"),
                provenance=info.get("provenance", ""),
                convention=record.convention,
                notes=list(info.get("notes", [])),
            )
        # later records of the same cell replace earlier ones
        if record.stage is not None:
            row.stages[record.stage] = record
            continue
        row.cells[record.mode] = record
        row.size = info.get("size", row.size)
        row.convention = record.convention or row.convention
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
_PAPER_METRIC = {"params_m": "params_m", "gmacs": "gflops"}


def _cell_triplet(row: Table1Row, mode: str, metric: str) -> tuple[str, str, str]:
    measured = row.measured(mode, metric)
    reported = row.reported(mode, _PAPER_METRIC[metric])
    text = paper_round(measured) if measured is not None else (row.status_text(mode) or "-")
    return text, paper_round(reported), format_delta(delta_pct(measured, reported))


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


def _body(rows: Sequence[Table1Row]) -> list[list[str]]:
    body = []
    for row in rows:
        line = [method_label(row), row.model, str(row.size or "-"), row.provenance]
        for mode, metric, _ in _COLUMNS:
            line += list(_cell_triplet(row, mode, metric))
        body.append(line)
    return body


def render_terminal(rows: Sequence[Table1Row]) -> str:
    """A fixed-width table for the terminal."""
    table = [_header(), *_body(rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
    header = _header()
    lines = [f"# {title}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(line) + " |" for line in _body(rows)]
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


def csv_rows(rows: Sequence[Table1Row]) -> list[dict[str, object]]:
    out = []
    for row in rows:
        for mode in MODES:
            record = row.cells.get(mode)
            if record is None:
                continue
            params, gmacs = row.measured(mode, "params_m"), row.measured(mode, "gmacs")
            paper_params, paper_flops = row.reported(mode, "params_m"), row.reported(mode, "gflops")
            out.append(
                {
                    "model": row.model,
                    "method": method_label(row),
                    "mode": mode,
                    "size": row.size,
                    "provenance": row.provenance,
                    "convention": record.convention,
                    "status": record.status,
                    "params_m": params,
                    "params_stored_m": row.measured(mode, "params_stored_m"),
                    "gmacs": gmacs,
                    "paper_params_m": paper_params,
                    "paper_gflops": paper_flops,
                    "delta_params_pct": delta_pct(params, paper_params),
                    "delta_gmacs_pct": delta_pct(gmacs, paper_flops),
                    "error": record.error,
                }
            )
    return out


def render_csv(rows: Sequence[Table1Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for line in csv_rows(rows):
        writer.writerow({k: "" if v is None else v for k, v in line.items()})
    return buffer.getvalue()


def render_json(rows: Sequence[Table1Row]) -> str:
    return json.dumps(csv_rows(rows), indent=2)
