"""What every part of a quality run shares: protocol, tree, store, evaluators, decoded frames, detector.

:class:`RunnerState` holds it; the video preparation (:mod:`.prepare`), the gallery
(:mod:`.gallery`) and the per-pair execution (:mod:`.execute`) are mixins over it, assembled by
:class:`~mfsbench.quality.runner.QualityRunner`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.device.timing import StageTimer
from mfsbench.quality.store import FrameResult, QualityStore


class RunnerState:
    """Shared state and the small helpers every stage uses (set up by ``QualityRunner.__init__``)."""

    protocol: Any
    tree: Any
    store: QualityStore
    fp: str
    evaluators: Any
    evalset: str
    progress: bool
    _frames: Any
    _detector: Any | None
    _detector_factory: Callable[[], Any] | None
    #: Stage timings of every work item this invocation wrote (cached items excluded).
    run_timer: StageTimer

    def _bar(self, iterable: Iterable[Any], total: int, desc: str) -> Iterable[Any]:
        if not self.progress:
            return iterable
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit="item", file=sys.stderr, dynamic_ncols=True,
                    mininterval=0.5, leave=True)

    @property
    def detector(self) -> Any:
        if self._detector is None:
            if self._detector_factory is not None:
                self._detector = self._detector_factory()
            else:
                from mfsbench.faces.detectors import get_detector

                self._detector = get_detector(self.protocol.detector)
        return self._detector

    def _detect(self, frame: np.ndarray, timer: StageTimer) -> Any | None:
        from mfsbench.swap.pipeline import largest_face

        with timer.time("detect"):
            faces = self.detector.detect(frame)
        return largest_face(faces) if faces else None

    def _read(self, path: Path, indices: Sequence[int], timer: StageTimer) -> dict[int, np.ndarray]:
        """The wanted frames (read-only), decoding only those not decoded recently."""
        started = time.perf_counter()
        frames, decoded = self._frames.read(path, indices)
        if decoded:
            timer.add("decode", time.perf_counter() - started, decoded)
        return frames

    def _put_item(self, row: str, evalset: str, *, target: str, source: str, status: str, reason: str | None,
                  results: Sequence[FrameResult], timings: dict[str, tuple[float, int]],
                  planned: int | None = None) -> None:
        """Write one work item and add its timings to this invocation's (:attr:`run_timer`)."""
        self.store.put_item(self.fp, row, evalset, target=target, source=source, status=status, reason=reason,
                            results=results, timings=timings, planned=planned)
        for stage, (seconds, calls) in timings.items():
            self.run_timer.add(stage, seconds, calls)
