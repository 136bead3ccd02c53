"""Run the FF++ quality protocol: sample frames, detect once, swap per row, evaluate, cache everything.

The work (every step resumes from :class:`~mfsbench.quality.store.QualityStore`), one module each:

1. **Prepare videos** (:mod:`.prepare`): sampled frames, detections, the no-face rule; then the
   source frame per source video by ``source_frame_policy``.
2. **Gallery** (:mod:`.gallery`): one embedding per source identity of the whole subset, from a
   held-out frame; retrieval stores the identity each swap retrieved.
3. **Work items** (:mod:`.execute`): one per (target, source) pair × row (:mod:`.plan`): swap,
   evaluate with the target's face, store in one commit.
4. **Aggregation** (:mod:`.aggregate`, used by :mod:`mfsbench.report.table2`): rates and means.

The gallery is built first, then each pair prepares its two videos just before its work items and
the reverse pair follows it (:func:`decode_order`), so the frames decoded for detection are still in
memory (:class:`~mfsbench.quality.frames.DecodedFrames`) when they are swapped and evaluated.

Before any work the card is checked against the evaluators that will run (:func:`check_card`), so a
card never names an evaluator or setting other than the one used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mfsbench.device.timing import StageTimer
from mfsbench.errors import BadInputError
from mfsbench.quality.aggregate import INFERENCE_STAGES, outside_share
from mfsbench.quality.card import check_card, evalset_key, evaluator_key, evaluator_meta
from mfsbench.quality.execute import PairExecutor
from mfsbench.quality.frames import DecodedFrames
from mfsbench.quality.gallery import Gallery, group_map
from mfsbench.quality.plan import (
    CALIBRATION_ROWS,
    PREPARE_ROW,
    RowKind,
    RowPlan,
    calibration_rows,
    decode_order,
    method_row,
    parse_shard,
    shard_pairs,
    zoo_row,
)
from mfsbench.quality.prepare import (
    NO_FACE_RULES,
    SOURCE_POLICIES,
    VideoPlan,
    file_stamp,
    frontal_score,
    gallery_candidates,
    substitution_windows,
)
from mfsbench.quality.protocol import identity_groups
from mfsbench.quality.store import QualityStore


@dataclass
class RunSummary:
    """What this invocation did. ``timings`` and ``seconds`` cover only the work items it wrote
    (cached items excluded), so ``frames_evaluated / seconds`` and the stage shares share one scope."""

    items_total: int = 0
    items_cached: int = 0
    items_run: int = 0
    frames_evaluated: int = 0
    seconds: float = 0.0
    timings: dict[str, tuple[float, int]] = field(default_factory=dict)


class QualityRunner(PairExecutor):
    """Everything one ``mfsbench quality`` invocation needs; :meth:`run` does the work."""

    def __init__(self, *, protocol: Any, tree: Any, store: QualityStore, rows: Sequence[RowPlan],
                 evaluators: Any, subset: str, shard: tuple[int, int] = (0, 1),
                 detector_factory: Callable[[], Any] | None = None, progress: bool = True,
                 info: dict[str, Any] | None = None) -> None:
        """``info`` is added to the run's header in the store (dataset path, tree problems, ...).

        Raises:
            BadInputError: a policy the runner does not implement, or a card that names other
                evaluators (or settings) than ``evaluators``.
        """
        self.protocol, self.tree, self.store = protocol, tree, store
        checks = (("source_frame_policy", SOURCE_POLICIES), ("no_face_rule", NO_FACE_RULES))
        for field_name, allowed in checks:
            value = getattr(protocol, field_name)
            if value not in allowed:
                raise BadInputError(f"protocol {protocol.id}: {field_name} {value!r} is not one of "
                                    f"{', '.join(allowed)}; fix the protocol file")
        check_card(protocol, evaluators)
        self.groups = identity_groups(protocol)
        self.fp: str = protocol.fingerprint()
        self.rows = list(rows)
        self.evaluators = evaluators
        self.evalset = evalset_key(evaluators)
        self.subset = subset
        self.shard = shard
        self._detector_factory = detector_factory
        self._detector = None
        self._pipelines = {}
        self._frames = DecodedFrames()
        self.progress = progress
        self.info = dict(info or {})
        self.run_timer = StageTimer()
        self._unit_gallery: Gallery | None = None
        self._unit_plans: dict[str, VideoPlan] = {}

    def write_header(self) -> list[Any]:
        """Store the run's header and Table 2's rows (what a report re-rendered from the store needs);
        returns every pair of the subset."""
        all_pairs = self.tree.pairs(self.subset)
        self.store.put_meta(f"run:{self.fp}:{self.evalset}", {
            "protocol_id": self.protocol.id, "dataset": "ffpp", "compression": self.protocol.compression,
            "subset": self.subset, "pairs": len(all_pairs), "evaluators": evaluator_meta(self.evaluators),
            "disabled": dict(self.evaluators.disabled), "card": self.protocol.card(),
            "identity_groups": {"source": self.protocol.identity_groups, "groups": self.groups},
            **self.info,
        })
        for position, row in enumerate(self.rows):
            self.store.put_row(self.fp, row.key, self.evalset, position, row.info())
        return all_pairs

    def run(self) -> RunSummary:
        """Do (or resume) every work item of this shard; returns what was done and what was skipped."""
        started = time.perf_counter()
        self.run_timer = StageTimer()
        summary = RunSummary()
        all_pairs = self.write_header()
        pairs = shard_pairs(all_pairs, self.shard)
        todo = [(p, r) for p in pairs for r in self.rows]
        summary.items_total = len(todo)
        missing = [(p, r) for p, r in todo
                   if not self.store.item_done(self.fp, r.key, self.evalset, p.target, p.source)]
        summary.items_cached = summary.items_total - len(missing)
        pending = {(p.target, p.source) for p, _ in missing}
        if pending:
            gallery = self.build_gallery(sorted({p.source for p in all_pairs}))
            plans: dict[str, VideoPlan] = {}
            todo_pairs = decode_order([p for p in pairs if (p.target, p.source) in pending])
            for pair in self._bar(todo_pairs, len(todo_pairs), "evaluate pairs"):
                # planned just before the pair, so its target frames are still decoded when it runs
                for video in (pair.target, pair.source):
                    if video not in plans:
                        plans[video] = self.prepare_video(video)
                summary.items_run += self.run_pair(pair, plans, gallery, summary)
        summary.seconds = time.perf_counter() - started
        summary.timings = self.run_timer.items()
        return summary

    # ------------------------------------------------------------------ units (mfsbench.engine)

    def units(self) -> list[tuple[str, str, str]]:
        """This shard's work items as engine units, ``(target, source, row key)``: the cache keys.

        In decode order (each pair's reverse next, rows of a pair together), so an engine that runs
        them in order reuses decoded frames as :meth:`run` does.
        """
        pairs = decode_order(shard_pairs(self.tree.pairs(self.subset), self.shard))
        return [(p.target, p.source, r.key) for p in pairs for r in self.rows]

    def run_unit(self, target: str, source: str, row_key: str) -> RunSummary:
        """One work item (one row of one pair), computed into this runner's store unless cached there.

        The gallery and the video plans are kept on the runner, so a worker that runs many units
        builds them once (and the store caches them across processes of one node).
        """
        started = time.perf_counter()
        self.run_timer = StageTimer()
        summary = RunSummary(items_total=1)
        if self.store.item_done(self.fp, row_key, self.evalset, target, source):
            summary.items_cached = 1
            return summary
        pairs = {(p.target, p.source): p for p in self.tree.pairs(self.subset)}
        rows = {r.key: r for r in self.rows}
        if (target, source) not in pairs or row_key not in rows:
            raise BadInputError(f"unit ({target}, {source}, {row_key}) is not a work item of this run; "
                                "the driver and the workers must see the same dataset and rows")
        if self._unit_gallery is None:
            self._unit_gallery = self.build_gallery(sorted({s for _, s in pairs}))
        for video in (target, source):
            if video not in self._unit_plans:
                self._unit_plans[video] = self.prepare_video(video)
        every_row, self.rows = self.rows, [rows[row_key]]  # run_pair does the rows in self.rows
        try:
            summary.items_run = self.run_pair(pairs[(target, source)], self._unit_plans, self._unit_gallery,
                                              summary)
        finally:
            self.rows = every_row
        summary.seconds = time.perf_counter() - started
        summary.timings = self.run_timer.items()
        return summary


__all__ = [
    "CALIBRATION_ROWS",
    "INFERENCE_STAGES",
    "NO_FACE_RULES",
    "PREPARE_ROW",
    "SOURCE_POLICIES",
    "Gallery",
    "QualityRunner",
    "RowKind",
    "RowPlan",
    "RunSummary",
    "VideoPlan",
    "calibration_rows",
    "decode_order",
    "evalset_key",
    "evaluator_key",
    "evaluator_meta",
    "file_stamp",
    "frontal_score",
    "gallery_candidates",
    "group_map",
    "method_row",
    "outside_share",
    "parse_shard",
    "shard_pairs",
    "substitution_windows",
    "zoo_row",
]
