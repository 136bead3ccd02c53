"""Training faces for ``mfsbench distill``: detected and aligned once, cached, filtered, split.

The paper trains on VGGFace2 faces whose eyes are more than 70 px apart, aligned the way the teacher
was trained ("the student uses the same face alignment algorithm as the teacher"). This module does
that to any folder of photos (and videos: one frame per second), with the suite's own detector and
templates (:mod:`mfsbench.faces`), and caches the crops with a manifest keyed by the inputs and the
settings, so a second run (or a resume) reads crops instead of detecting again.

Why a held-out split by name hash rather than a random draw: it does not change when the folder grows,
so an evaluation pair never silently moves into the training set.

Batches are a pure function of ``(seed, step)``, so a resumed run draws exactly the batches the
uninterrupted run would have drawn without saving any loader state.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mfsbench.errors import BadInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
#: Face ellipse of an aligned crop (centre, semi-axes, in units of the side): our stand-in for the
#: paper's BiSeNet background labels, generous enough to hold hair-line to chin of both templates.
ELLIPSE = ((0.5, 0.55), (0.36, 0.46))


@dataclass(frozen=True)
class PrepSettings:
    size: int
    align: str
    min_eye_distance_px: float
    detector: str


def _sources(root: Path) -> list[Path]:
    if not root.is_dir():
        raise BadInputError(f"--data {root} is not a folder; pass a folder of face photos or videos")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in
                   IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    if not files:
        raise BadInputError(f"--data {root} holds no images ({', '.join(IMAGE_SUFFIXES)}) or videos")
    return files


def _frames(path: Path) -> list[tuple[str, np.ndarray]]:
    """(label, BGR image) pairs: the photo, or one frame per second of a video."""
    from mfsbench.faces.align import cv2_module
    from mfsbench.faces.detectors import read_image

    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [("", read_image(path))]
    cv2 = cv2_module()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise BadInputError(f"cannot open video {path}; convert it to mp4 or remove it from --data")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(fps))
    frames, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            frames.append((f"f{index:06d}", frame))
        index += 1
    capture.release()
    return frames


def cache_key(files: list[Path], root: Path, settings: PrepSettings) -> str:
    h = hashlib.sha256(json.dumps(settings.__dict__, sort_keys=True).encode())
    for path in files:
        stat = path.stat()
        h.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def prepare(root: Path, cache: Path, settings: PrepSettings) -> dict:
    """Detect, filter and align every face under ``root`` once; returns the manifest (cached)."""
    from mfsbench.faces.align import align, cv2_module
    from mfsbench.faces.detectors import get_detector

    files = _sources(root)
    key = cache_key(files, root, settings)
    folder = cache / key
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        return json.loads(manifest_path.read_text(encoding="utf-8"))
    cv2 = cv2_module()
    detector = get_detector(settings.detector)
    folder.mkdir(parents=True, exist_ok=True)
    kept, dropped_small, no_face = [], 0, 0
    for path in files:
        for label, image in _frames(path):
            faces = detector.detect(np.ascontiguousarray(image[:, :, :3]))
            if not faces:
                no_face += 1
            for index, face in enumerate(faces):
                eyes = float(np.linalg.norm(face.landmarks5[1] - face.landmarks5[0]))
                if eyes <= settings.min_eye_distance_px:
                    dropped_small += 1
                    continue
                crop, _ = align(image[:, :, :3], face.landmarks5, settings.align, settings.size)
                name = hashlib.sha256(f"{path.relative_to(root)}|{label}|{index}".encode()).hexdigest()[:20]
                cv2.imwrite(str(folder / f"{name}.png"), crop)
                kept.append({"crop": f"{name}.png", "file": str(path.relative_to(root)), "frame": label,
                             "face": index, "eye_distance_px": round(eyes, 2)})
    manifest = {"key": key, "settings": settings.__dict__, "files": len(files), "kept": kept,
                "dropped_eye_distance": dropped_small, "images_without_face": no_face}
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    tmp.replace(manifest_path)
    sys.stderr.write(f"distill: {len(kept)} faces kept from {len(files)} files ({dropped_small} with eyes ≤ "
          f"{settings.min_eye_distance_px:g} px, {no_face} images without a face); cached in {folder}\n")
    return manifest


def background_mask(size: int) -> Tensor:
    """1 outside the face ellipse of an aligned crop, 0 inside: (1, 1, S, S)."""
    (cx, cy), (ax, ay) = ELLIPSE
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    inside = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1
    return (~inside).float()[None, None]


class CropSet:
    """The aligned crops of one manifest, split into train and held-out, as uint8 RGB tensors."""

    def __init__(self, folder: Path, manifest: dict, holdout: int) -> None:
        from mfsbench.faces.align import cv2_module

        cv2 = cv2_module()
        names = sorted((entry["crop"] for entry in manifest["kept"]),
                       key=lambda n: hashlib.sha256(n.encode()).hexdigest())
        if len(names) < holdout + 2:
            raise BadInputError(f"only {len(names)} faces passed the filters; need at least {holdout + 2} "
                                "(hold-out + 2 to train): add photos, or lower [data] holdout or "
                                "min_eye_distance_px")
        images = []
        for name in names:
            bgr = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
            if bgr is None:
                raise BadInputError(f"cached crop {folder / name} is unreadable; delete {folder} to rebuild")
            images.append(torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1))
        stacked = torch.stack(images)
        self.heldout = stacked[:holdout]
        self.train = stacked[holdout:]
        self.names = names
        #: the cache folder of these crops: per-crop products (the parser's masks) are cached beside them
        self.folder = folder

    def __len__(self) -> int:
        return len(self.train)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def fixed_sources(targets: Tensor, n: int, seed: int) -> Tensor:
    """``pairs = "fixed"``: the one source of each target, ``(target + shift) mod n`` with a seeded shift
    (the pair cache fills itself from this, so it must be the rule :func:`draw_batch` uses)."""
    return (targets + 1 + seed % max(n - 1, 1)) % n


def draw_batch(n: int, batch: int, seed: int, step: int, *, same_fraction: float, hflip: bool,
               pairs: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Indices for one step: ``(targets, sources, same, flip_target, flip_source)``, from (seed, step) only.

    ``pairs = "random"``: sources are a permutation of the batch's own targets; ``"fixed"``: target i
    always gets source ``(i + shift) mod n`` (one pair per target, so teacher outputs can be cached).
    """
    g = step_generator(seed, step)
    if batch <= n:
        targets = torch.randperm(n, generator=g)[:batch]
    else:
        targets = torch.randint(n, (batch,), generator=g)
    if pairs == "fixed":
        sources = fixed_sources(targets, n, seed)
    else:
        sources = targets[torch.randperm(batch, generator=g)]
    same = torch.zeros(batch, dtype=torch.bool)
    n_same = math.floor(same_fraction * batch + 0.5)
    same[:n_same] = True
    sources = torch.where(same, targets, sources)
    flips = torch.rand(2, batch, generator=g) < 0.5 if hflip else torch.zeros(2, batch, dtype=torch.bool)
    return targets, sources, same, flips[0], flips[1]


def to_float(images: Tensor, flip: Tensor | None = None) -> Tensor:
    x = images.float() / 255.0
    if flip is not None and bool(flip.any()):
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x
