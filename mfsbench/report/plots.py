"""Plots rendered from Table 1 rows: measured vs. reported cost per method, log scale.

matplotlib is the ``plot`` extra; without it the markdown and CSV reports are still written and the
caller is told which extra brings the plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from mfsbench.optional import require
from mfsbench.report.table1 import Table1Row, method_label


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (headless), or one line naming the ``plot`` extra."""
    matplotlib = require("matplotlib", "matplotlib", "drawing the plots (markdown and CSV need no plots)")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "matplotlib", "drawing the plots")


def plot_complexity(rows: Sequence[Table1Row], path: Path, convention: str) -> Path:
    """Two panels (image, video): GMACs per method, measured bars beside the paper's."""
    plt = pyplot()
    labels = [method_label(row) for row in rows]
    figure, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(rows) + 2.5), sharey=True)
    for axis, mode in zip(axes, ("image", "video"), strict=True):
        positions = range(len(rows))
        measured = [row.measured(mode, "gmacs") or 0 for row in rows]
        reported = [row.reported(mode, "gflops") or 0 for row in rows]
        axis.barh([p + 0.2 for p in positions], measured, height=0.4, label="measured", color="#2b6cb0")
        axis.barh(
            [p - 0.2 for p in positions],
            reported,
            height=0.4,
            label="paper (as reported)",
            color="#c05621",
            alpha=0.8,
        )
        axis.set_xscale("log")
        axis.set_title(f"{mode} mode")
        axis.set_xlabel(f"GMACs per frame ({convention} convention)")
        axis.set_yticks(
            list(positions), [f"{label} [{row.model}]" for label, row in zip(labels, rows, strict=True)]
        )
        axis.grid(axis="x", which="both", alpha=0.3)
    axes[0].invert_yaxis()
    axes[1].legend(loc="lower right")
    figure.suptitle("mfsbench: per-frame cost, measured vs. MobileFaceSwap Table 1")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
