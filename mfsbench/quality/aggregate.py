"""From stored per-frame results to a row's numbers: retrieval rates, pose, and the timing share.

Per frame the store holds the gallery identity the swap retrieved (``top1_id``), the cosine to the
source's entry and the pose error. A row's rates are means over its evaluated frames:

* **video-level top-1**: retrieved == the pair's source video (FF++'s usual figure);
* **identity-grouped top-1** (spec §1.3): retrieved is in the source's identity group, so a person
  who appears in several videos is not a miss when another of their videos is retrieved;
* **target-retrieval rate**: retrieved is in the *target's* identity group — what the floor row
  (``target_copy``) scores ≈ 100 % on, and how often a swap kept the target's identity instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Pipeline stages that are a network's (or an evaluator's) own forward pass; everything else
#: (decode, detect, align, paste-back, re-encode, bookkeeping) counts as "outside inference".
INFERENCE_STAGES = frozenset({"identity", "frame_network", "eval_identity", "eval_pose", "eval_features"})


def outside_share(timings: Mapping[str, tuple[float, int]]) -> float | None:
    """Share of the measured time not spent in a network's forward pass."""
    total = sum(s for s, _ in timings.values())
    if total <= 0:
        return None
    inside = sum(s for stage, (s, _) in timings.items() if stage in INFERENCE_STAGES)
    return (total - inside) / total


@dataclass(frozen=True)
class RetrievalRates:
    """Percentages over ``n`` queries (``None`` when there is none)."""

    n: int
    top1_pct: float | None
    grouped_top1_pct: float | None
    target_pct: float | None


def retrieval_rates(queries: Iterable[tuple[str, str, str]], groups: Mapping[str, str]) -> RetrievalRates:
    """Rates over ``(target, source, retrieved)`` triples; ``groups`` maps a video to its identity group
    (a video not in it is its own group)."""
    def group(video: str) -> str:
        return groups.get(video, video)

    rows = list(queries)
    if not rows:
        return RetrievalRates(0, None, None, None)
    n = len(rows)
    top1 = sum(r == s for _t, s, r in rows)
    grouped = sum(group(r) == group(s) for _t, s, r in rows)
    target = sum(group(r) == group(t) for t, _s, r in rows)
    return RetrievalRates(n, 100.0 * top1 / n, 100.0 * grouped / n, 100.0 * target / n)
