"""How numbers are shown: the paper's rounding, and deltas against the paper.

The paper prints 3 significant figures (82.1, 1.90, 107, 2440) and two decimals below 1
(0.50, 0.33). Showing measured values the same way makes a match or a mismatch visible at a
glance; the unrounded values stay in the records and the CSV.
"""

from __future__ import annotations

import math


def paper_round(value: float | None) -> str:
    """Format like the paper's Table 1: 2 decimals below 1, else 3 significant figures."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) < 1:
        return f"{value:.2f}"
    digits = 3 - math.floor(math.log10(abs(value))) - 1
    rounded = round(value, digits)
    return f"{rounded:.{max(digits, 0)}f}"


def delta_pct(measured: float | None, reported: float | None) -> float | None:
    """Relative difference of the measured value from the paper's, in percent."""
    if measured is None or reported is None or reported == 0:
        return None
    return (measured - reported) / reported * 100


def format_delta(delta: float | None) -> str:
    return "-" if delta is None else f"{delta:+.1f}%"
