"""What a quality run does, before it does it: Table 2's rows, the shard of pairs, the decode order.

Rows are the two calibration rows, zoo models and FF++'s own manipulated videos (:class:`RowPlan`);
shards (``--shard i/n``) take every n-th pair of the sorted pair list, so the partition is
deterministic and the union of shards is exactly the unsharded run; :func:`decode_order` puts each
pair's reverse right after it, so the frames one decoded are still in memory for the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mfsbench.errors import BadInputError

RowKind = Literal["oracle", "copy", "zoo", "method"]
CALIBRATION_ROWS = ("identity_oracle", "target_copy")
#: Row key of the work items that hold a video's preparation (and a gallery frame's) timings.
PREPARE_ROW = "__prepare__"
#: JPEG quality of the floor row's re-encode of the target frame (see :func:`calibration_rows`).
FLOOR_JPEG_QUALITY = 75

ORACLE_LABEL = "identity oracle (source video's face pasted into the target: near-duplicate ceiling)"
FLOOR_LABEL = f"target copy (JPEG q{FLOOR_JPEG_QUALITY} re-encode; retrieval floor: returns the target)"


@dataclass(frozen=True)
class RowPlan:
    """One row of Table 2: what produces the swapped frames, and the key its results are stored under."""

    key: str
    model: str
    kind: RowKind
    label: str
    mode: str | None = None
    weights: str = "-"
    checkpoints: tuple[str, ...] = ()
    method: str | None = None
    seed: int = 0
    gmacs: float | None = None  # per output frame in this row's mode (paper convention), for the plot
    #: what runs a swap row's frame stage: "torch" (a zoo network), "onnxruntime" (a card's graph, or a
    #: zoo network's frame stage exported per identity: ``quality --runtime``); None for rows without one
    runtime: str | None = None

    def info(self) -> dict[str, Any]:
        return {"model": self.model, "kind": self.kind, "label": self.label, "mode": self.mode,
                "weights": self.weights, "method": self.method, "gmacs": self.gmacs,
                **({"runtime": self.runtime} if self.runtime else {})}


def calibration_rows() -> list[RowPlan]:
    """The two rows that calibrate the metrics, run with every evaluation.

    * ``identity_oracle``: the source video's chosen frame (``source_frame_policy``), ArcFace-aligned
      at 224, pasted unblended into each target frame with the target's alignment. Its gallery entry
      is another frame of the same source video, so its top-1 measures retrieval of a near-duplicate
      of the gallery face (on the mini tree: the same photo, moved): the ceiling of a swap that
      carried the source identity over perfectly, not a reachable score.
    * ``target_copy``: each target frame re-encoded as JPEG (quality :data:`FLOOR_JPEG_QUALITY`).
      The retrieval floor: it returns the target, so its ID top-1 (to the source) is ≈ 0 and its
      target-retrieval rate ≈ 100 %; its pose error and feature distance are the evaluators' noise
      under a lossy re-encode of the same face (an unchanged copy would read 0 by construction).
    """
    return [
        RowPlan("identity_oracle", "identity_oracle", "oracle", ORACLE_LABEL),
        RowPlan("target_copy", "target_copy", "copy", FLOOR_LABEL),
    ]


def method_row(method: str, compression: str, gmacs: float | None = None) -> RowPlan:
    return RowPlan(f"ffpp:{method}@{compression}", f"ffpp:{method}", "method",
                   f"{method} (FF++ {compression} videos)", weights=f"ffpp-{compression}", method=method,
                   gmacs=gmacs)


def zoo_row(model: str, mode: str, weights: str, *, checkpoints: Sequence[str], seed: int,
            gmacs: float | None = None, runtime: str = "torch", own_runtime: str = "torch") -> RowPlan:
    """``weights`` is the checkpoints' sha256 (joined by ``+``) or ``random-weights:<seed>``;
    ``runtime`` what runs the frame stage: other than the model's ``own_runtime``, a row of its own
    (its own key and label; the model's own keeps the key rows had before runtimes were recorded)."""
    label = model + (" (random weights)" if weights.startswith("random-weights") else "")
    key = f"{model}@{weights}/{mode}"
    if runtime != own_runtime:
        label, key = f"{label} [{runtime}]", f"{key}/{runtime}"
    return RowPlan(key, model, "zoo", label, mode=mode, weights=weights, checkpoints=tuple(checkpoints),
                   seed=seed, gmacs=gmacs, runtime=runtime)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0 ≤ i < n) → (i, n); ``None`` → (0, 1).

    Raises:
        BadInputError: anything else.
    """
    if text is None:
        return 0, 1
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count):
        raise BadInputError(f"--shard {text!r} is not i/n with 0 <= i < n (e.g. --shard 0/4)")
    return int(index), int(count)


def shard_pairs(pairs: Iterable[Any], shard: tuple[int, int]) -> list[Any]:
    """Every n-th pair of the sorted list, starting at i: deterministic, disjoint, complete."""
    ordered = sorted(pairs, key=lambda p: (p.target, p.source))
    return ordered[shard[0]::shard[1]]


def decode_order(pairs: Sequence[Any]) -> list[Any]:
    """``pairs`` with each pair's reverse (same two videos, roles swapped) moved right after it.

    Results do not depend on the order; decoding does. Preparing a pair decodes both videos' sampled
    frames, and the reverse pair swaps the source's frames as its targets: run next, it finds them
    still in memory, so each video of a shard holding both directions is decoded once.
    """
    index = {(p.target, p.source): p for p in pairs}
    order: list[Any] = []
    placed: set[tuple[str, str]] = set()
    for pair in pairs:
        for key in ((pair.target, pair.source), (pair.source, pair.target)):
            if key in index and key not in placed:
                order.append(index[key])
                placed.add(key)
    return order
