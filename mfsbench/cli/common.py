"""Helpers shared by commands: validated output directories and model lists."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mfsbench.errors import BadInputError
from mfsbench.registry import ModelSpec, get_spec, list_models


def writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and prove it is writable before any work starts.

    Raises:
        BadInputError: naming the directory and what to do.
    """
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".mfsbench-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BadInputError(
            f"cannot write to --out {out} ({reason}); pass a directory you can write to"
        ) from None
    if not os.access(out, os.W_OK):
        raise BadInputError(f"cannot write to --out {out}; pass a directory you can write to")
    return out


def resolve_models(names: list[str] | None) -> list[ModelSpec]:
    """Specs for ``--models`` (comma- or space-separated), or the zoo without test nets when omitted."""
    if not names:
        return [get_spec(name) for name in list_models()]
    flat = [part for name in names for part in name.split(",") if part]
    return [get_spec(name) for name in flat]
