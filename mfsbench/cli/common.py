"""Helpers shared by commands: validated output directories, list options and model lists."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


class _ListAction(argparse.Action):
    """Collect the items of a list option: space- or comma-separated, repeatable, never empty.

    ``--models a,b``, ``--models a b``, ``--models a, b`` and ``--models a --models b`` all give
    ``["a", "b"]``; duplicates are dropped (first kept). An empty item (``a,,b``, a trailing comma,
    ``""``) is a one-line error, exit 2.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest, None)
        items = [] if current is None or current is self.default else list(current)  # repeated: adds
        values = values if isinstance(values, list) else [values]
        for index, value in enumerate(values):
            text = str(value).strip()
            if text.endswith(",") and index < len(values) - 1:  # "a, b": the comma ends one word
                text = text[:-1]
            parts = [part.strip() for part in text.split(",")]
            if any(not part for part in parts):
                parser.exit(2, f"{parser.prog}: error: {option_string} has an empty item in {value!r}; "
                               "separate names with commas or spaces (a,b or a b)\n")
            items += [part for part in parts if part not in items]
        setattr(namespace, self.dest, items)


def add_list_option(parser: argparse.ArgumentParser | Any, flag: str, *, help: str,
                    default: Sequence[str] | None = None, metavar: str = "NAME") -> None:
    """``flag`` as a list option in the suite's one syntax: ``a,b`` or ``a b`` (or both, or repeated).

    Every ``--models``, ``--backends``, ``--methods`` and ``--precision`` list goes through here,
    so the commands cannot drift apart again.
    """
    parser.add_argument(flag, nargs="+", action=_ListAction, metavar=metavar,
                        default=None if default is None else list(default),
                        help=f"{help}; separate items with commas or spaces")


def add_license_option(parser: argparse.ArgumentParser) -> None:
    """``--accept-license``, the same on every command that takes model cards."""
    parser.add_argument("--accept-license", action="store_true",
                        help="confirm your use complies with the licence of non-commercial model cards "
                             "(or set MFSBENCH_ACCEPT_LICENSE); the licence id is stamped into every record")


def apply_license_option(args: argparse.Namespace) -> None:
    """Accept card licences for this process when ``--accept-license`` was given: before any model
    name is resolved, since resolving a card checks its licence."""
    if getattr(args, "accept_license", False):
        from mfsbench.cards.license import accept_licenses

        accept_licenses()


def add_engine_options(parser: argparse.ArgumentParser, *, local: str, ray: str) -> None:
    """``--engine local|ray`` and ``--ray-address``, the same on every command that scales out;
    ``local`` and ``ray`` say what each engine does for this command."""
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help=f"where the work runs: local ({local}, default) or ray ({ray}; needs the "
                             "'ray' extra)")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="Ray cluster to join with --engine ray (host:port or ray://...; default "
                             "$RAY_ADDRESS, else a local instance capped to this machine)")


def frame_stage_specs(names: list[str] | None, default: list[str], size: int | None) -> list[ModelSpec]:
    """``--models`` (or ``default``) for the commands that export and time a frame stage (desktop and
    phones): each must have one, and run at ``--size`` when given."""
    specs = resolve_models(names or default)
    for spec in specs:
        if "frame" not in spec.stage_names:
            raise BadInputError(f"{spec.name} has no frame stage to export and time")
        if size is not None:
            spec.check_size(size)
    return specs
