"""Real face photos fetched from pinned registry packages into a cache outside the repository.

Moved here from ``tests/face_assets.py`` so that ``mfsbench ffpp-mini`` can build its miniature FF++
tree from the same real faces the tests use: no face photo is committed and none is synthesised.

* ``face_recognition==1.3.0`` sdist: Obama x5 (two of them partial faces) and Biden;
* ``insightface==2.1`` wheel: Tom Hanks (a 112x112 aligned crop) and ``t1.jpg`` (6 people);
* ``skimage.data.astronaut()`` (Eileen Collins), bundled in scikit-image, only when it is installed.

Only the image files are extracted; the archives are deleted. Cache: ``~/.cache/mfsbench/face-assets``
or ``$MFSBENCH_ASSET_CACHE``. Fetching needs the package index once (``pip download``); after that
everything is read from the cache. Failures raise ``RuntimeError`` with pip's own message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FACE_RECOGNITION_SDIST = "face_recognition==1.3.0"
INSIGHTFACE_WHEEL = "insightface==2.1"
CACHE_ENV = "MFSBENCH_ASSET_CACHE"
DOWNLOAD_TIMEOUT_S = 300


@dataclass(frozen=True)
class FacePhoto:
    """One photo: where it lies, whose face(s) it shows, and how many faces a person would count."""

    path: Path
    identity: str
    faces: int
    note: str = ""


# name → (archive member suffix, identity, number of faces, note)
_SDIST_PHOTOS = {
    "obama": ("tests/test_images/obama.jpg", "obama", 1, ""),
    "obama2": ("tests/test_images/obama2.jpg", "obama", 1, ""),
    "obama3": ("tests/test_images/obama3.jpg", "obama", 1, ""),
    "obama_partial_face": ("tests/test_images/obama_partial_face.jpg", "obama", 1, "cut by the border"),
    "obama_partial_face2": ("tests/test_images/obama_partial_face2.jpg", "obama", 1, "cut by the border"),
    "biden": ("tests/test_images/biden.jpg", "biden", 1, ""),
}
_WHEEL_PHOTOS = {
    "tom_hanks": ("insightface/data/images/Tom_Hanks_54745.png", "tom_hanks", 1, "112×112 aligned crop"),
    "t1": ("insightface/data/images/t1.jpg", "group", 6, "six different people"),
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mfsbench" / "face-assets")


def _pip_download(requirement: str, dest: Path, binary: bool) -> Path:
    """``pip download --no-deps`` one pinned distribution; return the archive path.

    Raises:
        RuntimeError: with pip's own last lines, when the index is unreachable or the pin is gone.
    """
    fmt = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           *fmt, "-d", str(dest), requirement]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip download {requirement} took over {DOWNLOAD_TIMEOUT_S} s") from None
    archives = [p for p in dest.iterdir() if p.suffix in (".whl", ".gz", ".zip")]
    if done.returncode != 0 or not archives:
        lines = (done.stderr or done.stdout).strip().splitlines()
        tail = " | ".join([line for line in lines if line.startswith("ERROR")][-2:] or lines[-2:])
        raise RuntimeError(f"pip download {requirement} failed: {tail}")
    return archives[0]


def _write_atomic(path: Path, content: bytes) -> None:
    """Write beside the target and rename, so a concurrent test run never reads half a photo."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def _extract(archive: Path, members: dict[str, tuple[str, str, int, str]], out: Path) -> None:
    """Copy only the listed image members of a tar.gz or wheel into ``out/<name><suffix>``."""
    wanted = {suffix: name for name, (suffix, *_rest) in members.items()}

    def target(member: str) -> Path | None:
        for suffix, name in wanted.items():
            if member.endswith(suffix):
                return out / f"{name}{Path(suffix).suffix}"
        return None

    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if (path := target(member)) is not None:
                    _write_atomic(path, zf.read(member))
    else:
        with tarfile.open(archive, "r:gz") as tf:
            for info in tf.getmembers():
                if info.isfile() and (path := target(info.name)) is not None:
                    handle = tf.extractfile(info)
                    assert handle is not None
                    _write_atomic(path, handle.read())


def _ensure(members: dict[str, tuple[str, str, int, str]], requirement: str, binary: bool,
            out: Path) -> None:
    if all((out / f"{name}{Path(s).suffix}").is_file() for name, (s, *_r) in members.items()):
        return
    with tempfile.TemporaryDirectory(prefix="mfsbench-dl-") as tmp:
        archive = _pip_download(requirement, Path(tmp), binary)
        _extract(archive, members, out)
    missing = [n for n, (s, *_r) in members.items() if not (out / f"{n}{Path(s).suffix}").is_file()]
    if missing:
        raise RuntimeError(f"{requirement} no longer contains {', '.join(missing)}")


def fetch_face_photos(out: Path | None = None) -> dict[str, FacePhoto]:
    """Download (once) and return every available photo by name.

    Raises:
        RuntimeError: when a download fails (the fixture turns this into a skip).
    """
    folder = out or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _ensure(_SDIST_PHOTOS, FACE_RECOGNITION_SDIST, binary=False, out=folder)
    _ensure(_WHEEL_PHOTOS, INSIGHTFACE_WHEEL, binary=True, out=folder)
    photos = {name: FacePhoto(folder / f"{name}{Path(s).suffix}", ident, n, note)
              for table in (_SDIST_PHOTOS, _WHEEL_PHOTOS) for name, (s, ident, n, note) in table.items()}
    astronaut = _astronaut(folder)
    if astronaut is not None:
        photos["astronaut"] = FacePhoto(astronaut, "astronaut", 1, "scikit-image sample (Eileen Collins)")
    return photos


def _astronaut(folder: Path) -> Path | None:
    """scikit-image's bundled astronaut as a PNG, or None when scikit-image is absent."""
    try:
        from skimage import data
    except ImportError:
        return None
    import cv2

    path = folder / "astronaut.png"
    if not path.is_file():
        ok, encoded = cv2.imencode(".png", np.ascontiguousarray(data.astronaut()[:, :, ::-1]))
        if not ok:
            raise RuntimeError("OpenCV could not encode the astronaut as PNG")
        _write_atomic(path, encoded.tobytes())
    return path
