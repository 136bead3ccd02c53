"""Checks on the files a command will write, made before any work so that nothing the user had is lost.

* :func:`refuse_overwriting_inputs`: an output that is one of the inputs (same inode through a
  symlink, a relative path, ``..`` or another case on a case-insensitive disk) is refused, since
  writing it would destroy the photo or video the user asked to swap.
* :func:`check_output_file` / :func:`check_records_file`: the path is not a directory and its folder
  (or, when that does not exist yet, the nearest folder above it that does) accepts a new file. A
  run that could only fail at the end, after minutes of swapping, fails at the start instead.

Nothing is created: the folders are probed with a temporary file that is removed at once, so a run
refused later for another reason leaves no trace.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mfsbench.errors import BadInputError


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode when both exist, else the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return a.resolve() == b.resolve()


def refuse_overwriting_inputs(out: Path, inputs: dict[str, Path], flag: str = "--out") -> None:
    """Refuse an output that resolves to one of ``inputs`` (flag → path).

    Raises:
        BadInputError: naming both flags.
    """
    for name, path in inputs.items():
        if same_file(out, path):
            raise BadInputError(f"{flag} {out} is the same file as {name} {path}; writing it would destroy "
                                f"your input, pass another {flag} path")


def _probe_folder(out: Path, flag: str) -> None:
    """Prove that a file can be created where ``out`` will be (its folder, or its nearest existing
    ancestor when the folder is still to be created)."""
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise BadInputError(f"cannot write {flag} {out}: {folder} is not a directory; "
                            "pass a path inside a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mfsbench-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BadInputError(f"cannot write {flag} {out}: {folder} is not writable ({reason}); "
                            "pass a path in a folder you can write to") from None


def check_output_file(out: Path, flag: str = "--out", *, example: str = "out.png") -> None:
    """``out`` can be written as a file: not a directory, and its folder accepts a new file (outputs
    are written beside ``out`` and renamed onto it, so an existing file's own mode does not matter).

    Raises:
        BadInputError: "is a directory", or the folder that cannot be written.
    """
    if out.is_dir():
        raise BadInputError(f"{flag} {out} is a directory; pass a file path such as {out / example}")
    _probe_folder(out, flag)


def check_records_file(path: Path, flag: str = "--records") -> None:
    """The JSONL store a record will be appended to can be opened for appending (it is not modified).

    Raises:
        BadInputError: "is a directory", or the folder or file that cannot be written.
    """
    if path.is_dir():
        raise BadInputError(f"{flag} {path} is a directory; pass a file such as {path / 'records.jsonl'}")
    if path.exists():
        try:
            with path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise BadInputError(f"cannot append to {flag} {path} ({exc.strerror or type(exc).__name__}); "
                                "pass a file you can write") from None
        return
    _probe_folder(path, flag)


__all__ = ["check_output_file", "check_records_file", "refuse_overwriting_inputs", "same_file"]
