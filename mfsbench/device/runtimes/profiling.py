"""Per-operator time from a runtime's own profiler, in one shape for every runtime.

"Where does the time go" is the question a latency number cannot answer. ONNX Runtime (its JSON
trace) and OpenVINO (``PERF_COUNT``) can each say it for their own kernels; LiteRT's Python
interpreter exposes no profiler (XNNPACK runs the whole graph as one delegate node), and its split
has to come from timing truncated graphs instead (README, device section).

Profiles are taken in separate runs after timing, so the profiler's own overhead never reaches the
timed samples; their totals are therefore a little above the timed latency.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Nodes kept per profile (the rest are in ``by_op_type``).
TOP_NODES = 8


@dataclass(frozen=True)
class OpProfile:
    """Milliseconds per inference by operator type and for the slowest nodes, averaged over ``runs``."""

    tool: str
    runs: int
    by_op_type: dict[str, float]
    top_nodes: list[tuple[str, str, float]]

    @property
    def total_ms(self) -> float:
        return sum(self.by_op_type.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; operator types as ``[op, ms]`` pairs, slowest first (records sort dict keys)."""
        return {"tool": self.tool, "runs": self.runs, "total_ms": self.total_ms,
                "by_op_type": [[op, ms] for op, ms in self.by_op_type.items()],
                "top_nodes": [list(n) for n in self.top_nodes]}


def aggregate(events: Iterable[tuple[str, str, float]], runs: int, tool: str) -> OpProfile:
    """Fold ``(node, op_type, ms)`` events of ``runs`` inferences into an :class:`OpProfile`.

    Raises:
        ValueError: when ``runs`` < 1 or no event was recorded (a profiler that saw nothing).
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    per_type: dict[str, float] = defaultdict(float)
    per_node: dict[tuple[str, str], float] = defaultdict(float)
    for node, op_type, ms in events:
        per_type[op_type] += ms
        per_node[(node, op_type)] += ms
    if not per_type:
        raise ValueError(f"{tool} recorded no operator events")
    by_type = {k: v / runs for k, v in sorted(per_type.items(), key=lambda kv: -kv[1])}
    nodes = sorted(per_node.items(), key=lambda kv: -kv[1])[:TOP_NODES]
    return OpProfile(tool, runs, by_type, [(node, op, ms / runs) for (node, op), ms in nodes])
