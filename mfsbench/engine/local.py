"""The in-process engine: units one after another in the driver, nothing new imported.

It runs the same task objects as :mod:`.ray_engine`, so a command written against
:class:`~mfsbench.engine.Engine` behaves the same on a laptop without Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class LocalEngine:
    """Sequential, in this process; an exception in a unit stops the run at once (no retries)."""

    name = "local"

    def workers(self) -> int:
        return 1

    def run(self, task: Callable[[Any], Any], units: Sequence[Any],
            on_done: Callable[[Any, Any], None]) -> None:
        for unit in units:
            on_done(unit, task(unit))

    def close(self) -> None:
        return None
