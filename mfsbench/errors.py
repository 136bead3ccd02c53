"""Typed errors that the CLI turns into one line and an exit code.

Every error a user can cause (bad flag, unknown model, unwritable directory) is a subclass of
:class:`MfsbenchError` with ``exit_code = 2``; failures of the measurement itself use 1. The message
always names the problem *and* the fix, because it is the only thing the user will see.
"""

from __future__ import annotations


class MfsbenchError(Exception):
    """Base class: a problem the CLI reports as one line, without a traceback."""

    exit_code: int = 1


class BadInputError(MfsbenchError):
    """The user asked for something that cannot work (flag value, size, path)."""

    exit_code = 2


class UnknownModelError(BadInputError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else "unknown model"


class DuplicateModelError(MfsbenchError):
    """Two specs registered under the same name: a programming error, caught at import."""


class UnsupportedSizeError(BadInputError):
    """An input size the network's architecture cannot take."""


class MissingDependencyError(MfsbenchError):
    """An optional backend is not installed; the message names the extra to install."""

    exit_code = 2


class CountMismatchError(MfsbenchError):
    """Two independent FLOP counters disagree on the same graph beyond the tolerance."""
