"""The one file digest every record uses (checkpoints, exported models, models pushed to phones).

Kept apart from :mod:`mfsbench.checkpoints.formats` because that module imports torch, and code
that only hashes files (the adb runner, the exporters' records) should not need it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (checkpoints can be hundreds of MB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
