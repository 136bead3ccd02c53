"""Where units of work run: in this process (``local``) or on a Ray cluster (``ray``).

Why a package of its own: ``quality`` is the first command whose work outgrows one machine, and
``device`` / ``flops`` sweeps are next. They all have the same shape — a list of small, picklable
units (cache keys), one picklable *task* that turns a unit into a published result, and a driver
that wants each outcome once — so one small protocol (:class:`Engine`) serves them all, and the
commands never import Ray themselves.

Rules every task follows (see :mod:`.ray_engine`):

* a task is a small picklable object (paths, settings, row plans): it builds its models inside the
  worker process, once per process (:func:`worker_memo`), never pickled across;
* a unit is idempotent: running it twice (a retried task after its worker died) publishes the same
  immutable file (:mod:`.publish`), so nothing is lost or counted twice.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mfsbench.errors import BadInputError

U = TypeVar("U")
ENGINES = ("local", "ray")
#: Test hook: a path; the first unit to find it absent creates it and SIGKILLs its own worker process
#: (how the tests kill a worker mid-unit, exactly once). Never set in normal use.
KILL_ONCE_ENV = "MFSBENCH_TEST_KILL_WORKER_ONCE"


class Engine(Protocol):
    """Runs ``task(unit)`` for every unit and hands each outcome to ``on_done`` in the driver."""

    name: str

    def workers(self) -> int:
        """How many units can run at once (CPUs of the local machine or of the cluster)."""

    def run(self, task: Callable[[Any], Any], units: Sequence[Any],
            on_done: Callable[[Any, Any], None]) -> None:
        """Every unit once (retried on worker death by engines that can); the first app error is
        re-raised after the other units finished, so one bad unit does not waste the rest."""

    def close(self) -> None:
        """Release what the engine started (a local Ray instance); idempotent."""


def check_engine_options(name: str, address: str | None) -> None:
    """Refuse ``--ray-address`` without ``--engine ray`` before any work starts (one line, exit 2).

    Raises:
        BadInputError: naming the fix.
    """
    if name != "ray" and address:
        raise BadInputError("--ray-address needs --engine ray; drop it or add --engine ray")


def get_engine(name: str, *, address: str | None = None) -> Engine:
    """``local`` or ``ray`` (Ray imported only here, lazily).

    Raises:
        BadInputError: another name, or ``--ray-address`` with the local engine.
        MissingDependencyError: ``ray`` without the ``ray`` extra installed.
    """
    check_engine_options(name, address)
    if name == "local":
        from mfsbench.engine.local import LocalEngine

        return LocalEngine()
    if name == "ray":
        from mfsbench.engine.ray_engine import RayEngine

        return RayEngine(address=address)
    raise BadInputError(f"--engine {name!r} is not one of {', '.join(ENGINES)}")


_MEMO: dict[Hashable, Any] = {}


def worker_memo(key: Hashable, build: Callable[[], Any]) -> Any:
    """The object ``build()`` returns, built once per worker process and ``key`` (models, stores).

    Ray reuses a worker process for many tasks of one function, so this is how a stateless task
    loads its models once per worker without an actor (and without pickling the models).
    """
    if key not in _MEMO:
        _MEMO[key] = build()
    return _MEMO[key]


def pin_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads`` (``None`` keeps torch's default); returns the count.

    Why: a float result depends on the thread count in its last digits (a reduction split over two
    threads adds in another order: the student's output moves by 1 ulp between 1 and 2 threads), and
    a Ray worker starts with one thread where the driver has one per core. A unit therefore carries
    the driver's count and pins it in the worker, so both engines compute the same digits.

    Raises:
        BadInputError: a count below 1.
    """
    import torch

    if threads is not None:
        if threads < 1:
            raise BadInputError(f"--threads {threads} is not a thread count; pass 1 or more")
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return torch.get_num_threads()


@contextmanager
def pinned_threads(threads: int | None) -> Iterator[int | None]:
    """:func:`pin_threads` for one command, then torch's previous count back; ``None`` (no request)
    yields None and does not import torch (a re-render from the cache never loads it).

    Why: the driver pins the count its units carry, and a command run in-process (the tests, a
    notebook) must not leave the process on another count than it found.
    """
    if threads is None:
        yield None
        return
    import torch

    previous = torch.get_num_threads()
    try:
        yield pin_threads(threads)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def maybe_kill_self() -> None:
    """The :data:`KILL_ONCE_ENV` test hook: SIGKILL this process the first time a unit runs."""
    marker = os.environ.get(KILL_ONCE_ENV)
    if not marker:
        return
    try:
        fd = os.open(Path(marker), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ENGINES", "KILL_ONCE_ENV", "Engine", "check_engine_options", "get_engine", "maybe_kill_self",
           "pin_threads", "pinned_threads", "worker_memo"]
