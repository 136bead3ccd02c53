"""A folder of real face photos for the distill tests: the registry photos, mirrored and slightly rotated.

The registry packages give 14 detectable faces (``tests/face_assets.py``); the distill tests need
~48 aligned crops (32 to train on, 16 held out), so each photo is also written mirrored, rotated by
±7°, and both. They stay real photographs (geometric copies, as a loader's augmentation makes), and
nothing is committed: the folder lives in pytest's temporary directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfsbench.quality.face_photos import FacePhoto

#: Eye-distance filter for the test photos: the group photo's faces are ~24–36 px apart after the resize.
TEST_MIN_EYE_PX = 20.0


def write_face_folder(photos: dict[str, FacePhoto], folder: Path, *, rotated: bool = True) -> Path:
    """Each photo as it is and mirrored, and with ``rotated`` both also turned by ±7° (4x the files: a
    test that needs fewer crops detects faces in half as many)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for name, photo in sorted(photos.items()):
        image = cv2.imread(str(photo.path), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) < 200:  # the 112 px aligned crop is too small to detect
            continue
        scale = min(1.0, 900 / max(image.shape[:2]))
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        variants = {"": image, "_mirror": np.ascontiguousarray(image[:, ::-1])}
        for angle in (-7, 7) if rotated else ():
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            for base in ("", "_mirror"):
                variants[f"{base}_rot{angle:+d}"] = cv2.warpAffine(variants[base], matrix, (w, h),
                                                                   borderMode=cv2.BORDER_REFLECT)
        for suffix, pixels in variants.items():
            cv2.imwrite(str(folder / f"{name}{suffix}.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder
