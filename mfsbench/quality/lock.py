"""Who may use a quality cache, and the records file next to it, at one time.

Why: two ``mfsbench quality`` runs on one ``--out`` used to evaluate the same work items twice and
end in an SQLite "database is locked" traceback. Now

* a run (or a ``--merge``) holds its cache with :func:`hold_cache` for as long as it works on it;
  a second run on the same cache is refused at once, in one line naming the pid that holds it
  (waiting could mean hours behind a full evaluation);
* appending records and writing the report is a short section that waits its turn
  (:func:`records_turn`, bounded), so shards with their own caches can share one ``--out``.

Locks are ``flock`` locks on a ``.lock`` file beside the cache: the kernel drops them when the
holder exits, even on SIGKILL, so a killed run never leaves a stale lock behind. The file's
content (pid, start time, command) only says who holds it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mfsbench.errors import BadInputError

#: How long a run waits for another one's records append and report write (each takes seconds).
RECORDS_WAIT_S = 120.0


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False when another process holds it."""
    if sys.platform == "win32":  # pragma: no cover - the suite runs on Linux
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> dict[str, Any]:
    """Who holds the lock, as it wrote itself down (empty while it is still writing)."""
    for _ in range(20):  # the holder writes right after locking: give it a moment, boundedly
        try:
            text = path.read_text(encoding="utf-8")
            if text.strip():
                return dict(json.loads(text))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another mfsbench process"
    return (f"mfsbench {holder.get('command', 'quality')} pid {holder.get('pid', '?')}, "
            f"started {holder.get('started', '?')}")


@contextmanager
def _locked(path: Path, command: str, *, wait_s: float) -> Iterator[dict[str, Any] | None]:
    """Hold ``path`` locked; yields None, or (when ``wait_s`` ran out) the holder's description."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                yield _holder(path)
                return
            time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command,
                                 "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                                 }).encode())
        try:
            yield None
        finally:
            os.ftruncate(fd, 0)  # the lock itself goes with the descriptor
    finally:
        os.close(fd)


def lock_path(target: Path) -> Path:
    """The lock file of a cache or records file: ``<name>.lock`` beside it."""
    return target.with_name(target.name + ".lock")


@contextmanager
def hold_cache(cache: Path, command: str) -> Iterator[None]:
    """Hold ``cache`` for a whole run, or refuse at once naming the run that holds it.

    Raises:
        BadInputError: another process holds it (one line: its pid, when it started, what to do).
    """
    with _locked(lock_path(cache), command, wait_s=0.0) as holder:
        if holder is not None:
            raise BadInputError(
                f"{cache} is in use by another run ({_describe(holder)}); wait for it to finish (its "
                "report then re-renders from the cache in seconds), or pass another --out or --cache")
        yield


@contextmanager
def records_turn(records: Path, command: str, wait_s: float = RECORDS_WAIT_S) -> Iterator[None]:
    """Wait (at most ``wait_s``) for the records file and the report next to it, then hold them.

    Raises:
        BadInputError: another process held them longer than ``wait_s``.
    """
    with _locked(lock_path(records), command, wait_s=wait_s) as holder:
        if holder is not None:
            raise BadInputError(
                f"{records} stayed in use by another run ({_describe(holder)}) for {wait_s:.0f} s; "
                "re-run when it has finished (finished work items are in the cache)")
        yield
