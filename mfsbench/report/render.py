"""Write every report that a set of records supports; used by ``flops`` and by ``report``.

Both commands call the same function over the same records, so re-rendering ``reports/`` from the
JSONL store gives byte-identical markdown and CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mfsbench.errors import MissingDependencyError
from mfsbench.records import Record
from mfsbench.report import device, device_android, table1
from mfsbench.report.plots import plot_complexity


def table1_stem(convention: str) -> str:
    """``table1_complexity`` for the paper convention, suffixed by the convention otherwise."""
    return "table1_complexity" if convention == "paper" else f"table1_complexity_{convention}"


def render_reports(records: Sequence[Record], out_dir: Path) -> tuple[list[Path], list[str]]:
    """Table 1 for every convention present, and the desktop and phone device reports.

    Returns the written paths and warnings.
    """
    written: list[Path] = []
    warnings: list[str] = []
    for convention in table1.conventions_in(records):
        rows = table1.latest_rows(records, convention)
        if not rows:
            continue
        stem = out_dir / table1_stem(convention)
        title = f"Table 1 reproduced: parameters and FLOPs ({convention} convention)"
        md = stem.with_suffix(".md")
        md.write_text(table1.render_markdown(rows, title), encoding="utf-8")
        csv_path = stem.with_suffix(".csv")
        csv_path.write_text(table1.render_csv(rows), encoding="utf-8")
        written += [md, csv_path]
        try:
            written.append(plot_complexity(rows, stem.with_suffix(".png"), convention))
        except MissingDependencyError as exc:
            warnings.append(str(exc))
    written += device.write_reports(records, out_dir)
    written += device_android.write_reports(records, out_dir)
    return written, warnings
