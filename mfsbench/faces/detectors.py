"""Face detectors behind one protocol: ``detect(image_bgr) -> list[Face]``.

Two backends, chosen by name with :func:`get_detector`:

* ``dlib`` (the default, **offline**): dlib's HOG detector + the 68-point shape predictor, from the
  registry packages ``dlib-bin`` (prebuilt wheel) and ``face-recognition-models`` (the model files).
  The five insightface points are derived from the 68: eye centres (mean of each eye's 6 contour
  points), nose tip (30), mouth corners (48, 54). ``dlib-cnn`` swaps HOG for dlib's CNN (MMOD)
  detector, which is more robust to pose but ~20× slower on a CPU.
* ``scrfd``: the official insightface ``scrfd_10g_bnkps.onnx`` that MobileFaceSwap and SimSwap run,
  through onnxruntime. The model file is user-supplied (``model_path=``); nothing is downloaded.

Why dlib HOG + 68 points is the default. Measured on this 2-core CPU (AMD EPYC), on the registry
photos of ``tests/face_assets.py``: Obama ×5 (two partial faces), Biden, Tom Hanks' 112×112 crop,
the astronaut, and t1.jpg (6 people), each downscaled to ≤640 px for detection:

* accuracy. HOG with one upsampling finds all 14 faces, including the 6 in t1.jpg; without
  upsampling it finds 4 of those 6. Its only false positive, a patch of the astronaut's suit, scores
  0.12, under :data:`DLIB_MIN_SCORE`; the weakest true face (t1.jpg) scores 0.35. dlib's CNN
  detector also finds all 6 people, but only with one upsampling. MTCNN 1.0.0 finds every face but
  adds a false positive on obama.jpg (conf 0.949). On the 14 faces the five points agree with
  MTCNN's to 6.5 % of the interocular distance on average (eyes 6.6–8.0 %, mouth 4.5–5.2 %). On
  insightface's ArcFace-aligned Tom Hanks crop the eye centres land within 2.3 px of the 112
  template.
* speed per 640×480 frame (median, 2 threads): HOG + landmarks 0.12 s; CNN (no upsampling) 2.7 s;
  MTCNN on TensorFlow 0.23 s. Loading the dlib models takes 1.0 s.
* install: ``dlib-bin`` 11 MB + ``face-recognition-models`` 126 MB, seconds, no compiler (``dlib``
  itself is sdist-only, 10 min compile). MTCNN needs TensorFlow: a 2.5 GB venv.
  mediapipe's bundled BlazeFace has no mouth corners and pins numpy<2. OpenCV's Haar cascades
  give no landmarks and miss both partial faces.
* landmarks: the CC0 5-point dlib predictor has eye corners and the point *under* the nose, no
  mouth corners. Its "nose" is 0.12–0.30 interocular distances below the tip, so a 5-point
  alignment would have to invent two of its points.
* licence: dlib is Boost, and the HOG and CNN detectors are dlib's own. **The 68-point model was
  trained on iBUG 300-W, whose licence excludes commercial use.** This default is for
  benchmarking; commercial work should use ``scrfd`` or its own detector (MTCNN, MIT, is the
  licence-clean offline alternative if TensorFlow is acceptable).

Every backend is imported only when chosen, so a missing one is a one-line
:class:`~mfsbench.errors.MissingDependencyError` naming the pip extra.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mfsbench.errors import BadInputError, MissingDependencyError
from mfsbench.faces.align import cv2_module
from mfsbench.faces.types import Face
from mfsbench.optional import install_hint, require

DEFAULT_DETECTOR = "dlib"

#: HOG scores are SVM margins. 0.2 drops the astronaut's suit patch (0.12) and keeps every real
#: face of the test photos (weakest 0.35).
DLIB_MIN_SCORE = 0.2

#: dlib 68-point indices of the five insightface points (image left/right).
DLIB68_LEFT_EYE = slice(36, 42)
DLIB68_RIGHT_EYE = slice(42, 48)
DLIB68_NOSE_TIP = 30
DLIB68_MOUTH_LEFT = 48
DLIB68_MOUTH_RIGHT = 54


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces: boxes, scores and five landmarks in image pixels."""

    name: str

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """All faces in a BGR uint8 image, highest score first; ``[]`` when there are none."""
        ...


def check_image(image: Any) -> np.ndarray:
    """Validate a decoded image and return it as BGR uint8 (H, W, 3).

    Grayscale and BGRA (e.g. 32-bit PNGs) are converted, because they are valid photos. Anything
    else is a caller error, reported as one line instead of a crash deep inside a backend.

    Raises:
        BadInputError: ``None`` (what ``cv2.imread`` returns for unreadable files), non-arrays,
            empty images, non-uint8 data or unsupported channel counts.
    """
    if image is None:
        raise BadInputError("the image could not be read (got None, which cv2.imread returns for "
                            "missing or undecodable files); pass a JPEG/PNG path that exists")
    if not isinstance(image, np.ndarray):
        raise BadInputError(f"a face detector takes a numpy image, got {type(image).__name__}")
    if image.size == 0 or image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise BadInputError(f"the image is empty or not H×W(×C): shape {image.shape}")
    if image.dtype != np.uint8:
        raise BadInputError(f"a face detector takes uint8 BGR images, got dtype {image.dtype}; "
                            "convert with (x * 255).clip(0, 255).astype(np.uint8)")
    cv2 = cv2_module()
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.shape[2] != 3:
        raise BadInputError(f"the image has {image.shape[2]} channels; pass BGR, BGRA or grayscale")
    return image


# ------------------------------------------------------------------------------------- reading photos

#: EXIF Orientation tag (TIFF tag 274).
EXIF_ORIENTATION_TAG = 0x0112


def _tiff_orientation(tiff: bytes) -> int:
    """The Orientation value (1–8) in a TIFF-structured EXIF block's first IFD; 1 when absent."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "little" if tiff[:2] == b"II" else "big"
    if int.from_bytes(tiff[2:4], order) != 42:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return 1
    count = int.from_bytes(tiff[ifd:ifd + 2], order)
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i: ifd + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, kind = int.from_bytes(entry[0:2], order), int.from_bytes(entry[2:4], order)
        if tag == EXIF_ORIENTATION_TAG and kind == 3:
            value = int.from_bytes(entry[8:10], order)  # a SHORT sits in the first 2 bytes of the value
            return value if 1 <= value <= 8 else 1
    return 1


def _jpeg_exif(data: bytes) -> bytes:
    """The TIFF block of a JPEG's ``Exif`` APP1 segment, searched up to the scan; ``b""`` if none."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
        elif marker in (0xDA, 0xD9):
            break
        else:
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            segment = data[pos + 4:pos + 2 + length]
            if marker == 0xE1 and segment[:6] == b"Exif\x00\x00":
                return segment[6:]
            pos += 2 + length
    return b""


def _png_exif(data: bytes) -> bytes:
    """The ``eXIf`` chunk of a PNG; ``b""`` if none."""
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"eXIf":
            return data[pos + 8:pos + 8 + length]
        if kind == b"IEND":
            break
        pos += 12 + length
    return b""


def _webp_exif(data: bytes) -> bytes:
    """The ``EXIF`` chunk of a WebP (RIFF) file, without an ``Exif`` prefix; ``b""`` if none."""
    pos = 12
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos + 4:pos + 8], "little")
        if data[pos:pos + 4] == b"EXIF":
            block = data[pos + 8:pos + 8 + length]
            return block[6:] if block[:6] == b"Exif\x00\x00" else block
        pos += 8 + length + (length & 1)
    return b""


def exif_orientation(data: bytes) -> int:
    """EXIF Orientation (1–8, 1 = upright) of an encoded JPEG, PNG (``eXIf``) or WebP (``EXIF``) file.

    These are the containers whose orientation OpenCV applies with ``IMREAD_COLOR``. The reader here
    exists because ``IMREAD_UNCHANGED``, the only flag that keeps alpha and 16 bits, never applies it.
    """
    if data[:2] == b"\xff\xd8":
        return _tiff_orientation(_jpeg_exif(data))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _tiff_orientation(_png_exif(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _tiff_orientation(_webp_exif(data))
    return 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as a person sees them: undo EXIF ``orientation`` (1–8) on an (H, W[, C]) array."""
    if orientation == 2:
        image = image[:, ::-1]
    elif orientation == 3:
        image = image[::-1, ::-1]
    elif orientation == 4:
        image = image[::-1]
    elif orientation == 5:
        image = np.swapaxes(image, 0, 1)
    elif orientation == 6:
        image = np.swapaxes(image, 0, 1)[:, ::-1]
    elif orientation == 7:
        image = np.swapaxes(image, 0, 1)[::-1, ::-1]
    elif orientation == 8:
        image = np.swapaxes(image, 0, 1)[::-1]
    return np.ascontiguousarray(image)


class Photo(np.ndarray):
    """A photo's BGR uint8 pixels (what every detector and model takes) that remembers what the file
    had beyond them, so that :func:`photo_for_file` can write it back:

    * ``alpha``: the alpha plane (uint8 or uint16), or ``None``;
    * ``deep``: the 16-bit BGR pixels of a 16-bit file, or ``None``; the uint8 pixels are its top byte;
    * ``deep8``: that top byte as read, to tell which pixels a swap changed.

    Only the array :func:`read_image` returns (and :func:`like_photo` builds) carries them: a slice, a
    copy or any computed array is a plain image again, since its pixels no longer match the file's.
    """

    alpha: np.ndarray | None
    deep: np.ndarray | None
    deep8: np.ndarray | None

    def __array_finalize__(self, obj: Any) -> None:
        self.alpha = self.deep = self.deep8 = None


def _photo(pixels: np.ndarray, alpha: np.ndarray | None, deep: np.ndarray | None,
           deep8: np.ndarray | None) -> np.ndarray:
    if alpha is None and deep is None:
        return pixels
    photo = np.asarray(pixels).view(Photo)
    photo.alpha, photo.deep, photo.deep8 = alpha, deep, deep8
    return photo


def like_photo(original: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (a processed BGR uint8 copy of ``original``) with ``original``'s alpha and 16-bit
    pixels attached, so that the written result keeps them; ``pixels`` as is for an ordinary image."""
    if not isinstance(original, Photo) or pixels.shape != original.shape:
        return pixels
    if pixels is original:
        return original
    return _photo(pixels, original.alpha, original.deep, original.deep8)


def photo_for_file(image: np.ndarray, suffix: str) -> tuple[np.ndarray, list[str]]:
    """The array to encode for a file with ``suffix``, and a warning for everything it cannot keep.

    Alpha is copied through unchanged; a 16-bit photo is written at 16 bits where the format allows
    (PNG, TIFF): pixels the swap did not change keep their original 16-bit values exactly, changed
    ones are the 8-bit result × 257. JPEG, BMP and WebP take 8 bits; JPEG and BMP have no alpha.
    """
    if not isinstance(image, Photo) or (image.alpha is None and image.deep is None):
        return np.asarray(image), []
    pixels = np.asarray(image)
    suffix = suffix.lower()
    warnings: list[str] = []
    alpha = image.alpha
    deep_ok = suffix in (".png", ".tif", ".tiff")
    if image.deep is not None and image.deep8 is not None:
        if deep_ok:
            changed = np.any(pixels != image.deep8, axis=2)
            deep = image.deep.copy()
            deep[changed] = pixels[changed].astype(np.uint16) * 257
            pixels = deep
        else:
            warnings.append(f"the 16-bit input is written at 8 bits ({suffix} has no 16-bit mode); "
                            "use .png or .tiff to keep 16 bits")
    if alpha is not None:
        if suffix in (".jpg", ".jpeg", ".bmp"):
            warnings.append(f"the input's alpha channel is dropped ({suffix} has none); use .png to keep it")
        else:
            if pixels.dtype == np.uint16 and alpha.dtype == np.uint8:
                alpha = alpha.astype(np.uint16) * 257
            elif pixels.dtype == np.uint8 and alpha.dtype == np.uint16:
                alpha = (alpha >> 8).astype(np.uint8)
            pixels = np.dstack([pixels, alpha])
    return np.ascontiguousarray(pixels), warnings


def read_image(path: str | Path) -> np.ndarray:
    """Read a photo as BGR uint8 the way a person sees it, or say why it cannot be.

    The EXIF orientation of JPEG, PNG and WebP files is applied (a portrait phone photo is upright).
    A file with alpha or 16 bits per channel comes back as a :class:`Photo`: BGR uint8 like any other,
    plus what :func:`photo_for_file` needs to write the alpha and the 16 bits back.

    Raises:
        BadInputError: missing or undecodable file.
    """
    cv2 = cv2_module()
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"image not found: {file}; check the path")
    data = file.read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if image is None:
        raise BadInputError(f"cannot decode image {file}; pass a JPEG/PNG/BMP/WebP file")
    image = apply_orientation(image, exif_orientation(data))
    alpha = None
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3].copy()
        image = np.ascontiguousarray(image[:, :, :3])
    deep = None
    if image.dtype == np.uint16:  # 16-bit PNG/TIFF: detect and swap on the top byte, keep the rest
        deep = check_image_depth16(image)
        image = (deep >> 8).astype(np.uint8)
    pixels = check_image(image)
    return _photo(pixels, alpha, deep, pixels.copy() if deep is not None else None)


def check_image_depth16(image: np.ndarray) -> np.ndarray:
    """A 16-bit image as BGR uint16 (H, W, 3)."""
    cv2 = cv2_module()
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image)


# ---------------------------------------------------------------------------------------------- dlib


def dlib_model_dir() -> Path:
    """Folder of the ``face-recognition-models`` .dat files, found without importing the package.

    ``import face_recognition_models`` needs ``pkg_resources``, which setuptools ≥ 81 no longer has.
    ``find_spec`` only locates it.

    Raises:
        MissingDependencyError: the package is not installed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the dlib face detector needs the Python package "
                                     "'face-recognition-models' (its model files); install it with: "
                                     + install_hint("face-recognition-models"))
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _dlib() -> Any:
    return require("dlib", "dlib-bin", "the dlib face detector")


#: dlib's HOG window (80×80 px): the smallest face it finds without upsampling.
DLIB_WINDOW = 80
#: the default smallest face to find, in image pixels (see :class:`DlibDetector`). A smaller face
#: would be upscaled about 3× into a 224-px swap crop.
DLIB_MIN_FACE = 80
#: the default cap on the detection copy's long side.
DLIB_MAX_SIDE = 4096
#: a photo's detection copy is never coarser than this long side (the fixed size used before).
DLIB_BASE_SIDE = 640
#: a video frame's floor (see :func:`video_detector_options`): measured on a 640×480 clip with a
#: 62-px face box, a 400-px copy found it in 50 of 50 frames at half the 640-px copy's time (61 against
#: 122 ms), a 320-px copy in only 43.
DLIB_VIDEO_BASE_SIDE = 400


def _number(value: Any, name: str) -> float:
    """A detector option given as text (``--detector-option max_side=640``) or a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadInputError(f"dlib detector option {name} must be a number, got {value!r}") from None


def landmarks5_from_68(points68: np.ndarray) -> np.ndarray:
    """The five insightface points from dlib's 68 (eye centres, nose tip, mouth corners)."""
    pts = np.asarray(points68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks, got shape {pts.shape}")
    return np.stack([
        pts[DLIB68_LEFT_EYE].mean(0),
        pts[DLIB68_RIGHT_EYE].mean(0),
        pts[DLIB68_NOSE_TIP],
        pts[DLIB68_MOUTH_LEFT],
        pts[DLIB68_MOUTH_RIGHT],
    ])


class DlibDetector:
    """dlib HOG (or CNN) boxes + 68-point landmarks reduced to insightface's five.

    Detection runs on a downscaled copy; the landmarks are then predicted on the full-resolution
    image, because their precision is what the alignment depends on. The copy's scale adapts to the
    photo, so that small faces in large photos are found:

    * ``min_face`` (default 80): the smallest face width, in the image's own pixels, to find. The copy
      is downscaled only as far as keeps such a face at the detector's minimum (dlib's 80-px window,
      halved by each ``upsample``: 40 px by default, so a scale of 1/2), but never below ``base_side``.
    * ``base_side`` (default 640): the copy is never coarser than this long side, so a photo is
      detected at least as finely as before. A video's frames use 400 (:data:`DLIB_VIDEO_BASE_SIDE`,
      which the swap command passes for a video): a 640×480 frame is detected at 400×300, 2.6× fewer
      pixels, and the tracker carries faces between detections; frames of 1280 px and more are
      detected as photos are (``min_face`` sets their scale).
    * ``max_side`` (default 4096): a cap on the copy's long side, which bounds time and memory on
      huge photos. ``max_side=640`` is the fixed 640-px copy used before, which finds only faces
      wider than about 1/16 of the photo's long side (none of 18 faces 120 px wide in 5760×2560).

    Cost grows with the copy's area. A 640×480 photo is detected as before. A 1920×1080 frame is
    detected at 960×540, 2.25× the area of the 640×360 copy used before (measured 0.55 s against
    0.15 s per frame on 2 shared cores; pass ``max_side=640`` for the old cost in videos of large
    faces). A 5760×2560 photo is detected at 2880×1280: 4.0 s, finding all 18 faces 120 px wide of
    ``tests/test_images.py``'s canvas, where the 640-px copy (0.33 s) finds none.
    """

    def __init__(self, model: str = "hog", upsample: int = 1, *, max_side: int = DLIB_MAX_SIDE,
                 min_score: float | None = None, min_face: float = DLIB_MIN_FACE,
                 base_side: int = DLIB_BASE_SIDE) -> None:
        if model not in ("hog", "cnn"):
            raise BadInputError(f"dlib detector model must be 'hog' or 'cnn', got {model!r}")
        max_side, min_face = _number(max_side, "max_side"), _number(min_face, "min_face")
        base_side = _number(base_side, "base_side")
        if upsample < 0 or max_side < 32 or min_face <= 0 or base_side < 0:
            raise BadInputError(f"dlib detector needs upsample >= 0, max_side >= 32, min_face > 0 and "
                                f"base_side >= 0, got upsample={upsample}, max_side={max_side}, "
                                f"min_face={min_face}, base_side={base_side}")
        self.min_face, self.base_side = min_face, base_side
        dlib = _dlib()
        models = dlib_model_dir()
        self.name = "dlib" if model == "hog" else "dlib-cnn"
        self.model, self.upsample, self.max_side = model, upsample, max_side
        # MMOD confidences sit around 1.0 for faces; HOG margins need the measured cut
        self.min_score = (DLIB_MIN_SCORE if model == "hog" else 0.0) if min_score is None else min_score
        self._dlib = dlib
        if model == "hog":
            self._detector = dlib.get_frontal_face_detector()
        else:
            self._detector = dlib.cnn_face_detection_model_v1(str(models / "mmod_human_face_detector.dat"))
        self._predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))

    def _boxes(self, rgb_small: np.ndarray) -> list[tuple[Any, float]]:
        if self.model == "hog":
            rects, scores, _ = self._detector.run(rgb_small, self.upsample, self.min_score)
            return list(zip(rects, scores, strict=True))
        return [(d.rect, d.confidence) for d in self._detector(rgb_small, self.upsample)
                if d.confidence >= self.min_score]

    def detection_scale(self, shape: tuple[int, ...]) -> float:
        """The factor the detection copy of an image of ``shape`` (H, W) is resized by (≤ 1)."""
        long_side = max(shape[:2])
        window = DLIB_WINDOW / 2**self.upsample  # the smallest face the detector sees, in copy pixels
        wanted = max(self.base_side / long_side, window / self.min_face)
        return min(1.0, self.max_side / long_side, wanted)

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        cv2 = cv2_module()
        image = check_image(image_bgr)
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        scale = self.detection_scale(image.shape[:2])
        small = rgb
        if scale < 1.0:
            small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        faces = []
        for rect, score in self._boxes(small):
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float64) / scale
            full = self._dlib.rectangle(*(round(v) for v in box))
            shape = self._predictor(rgb, full)
            points = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
            faces.append(Face(box=box, score=float(score), landmarks5=landmarks5_from_68(points)))
        return sorted(faces, key=lambda f: -f.score)

    def landmarks_in_box(self, image_bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The five points predicted inside ``box`` (image pixels), as :meth:`detect` does for its own
        boxes: a video tracker moves the box between detections and gets fresh landmarks in ~2 ms
        instead of a detection's ~120 ms.

        Only a window around the box (the box's own size of margin on every side, inside the image)
        is converted to RGB for dlib: the whole 640×480 frame's conversion took as long as the
        prediction (about 2 ms each). The predictor reads pixels near its shape only, so the
        landmarks are the ones of the whole frame (a test compares them)."""
        image = check_image(image_bgr)
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        mx, my = max(x2 - x1, 1), max(y2 - y1, 1)
        left, top = max(x1 - mx, 0), max(y1 - my, 0)
        right, bottom = min(x2 + mx, image.shape[1]), min(y2 + my, image.shape[0])
        if right - left < 2 or bottom - top < 2:  # a box off the image: the whole frame, as before
            left, top, right, bottom = 0, 0, image.shape[1], image.shape[0]
        rgb = np.ascontiguousarray(image[top:bottom, left:right, ::-1])
        shape = self._predictor(rgb, self._dlib.rectangle(x1 - left, y1 - top, x2 - left, y2 - top))
        points = np.array([[p.x + left, p.y + top] for p in shape.parts()], np.float64)
        return landmarks5_from_68(points)


# --------------------------------------------------------------------------------------------- SCRFD

SCRFD_STRIDES = (8, 16, 32)
SCRFD_ANCHORS = 2


def anchor_centers(height: int, width: int, stride: int, num_anchors: int = SCRFD_ANCHORS) -> np.ndarray:
    """``(height·width·num_anchors, 2)`` anchor centres (x, y) in input pixels, row-major, anchors inner."""
    ys, xs = np.mgrid[:height, :width]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float64) * stride
    return np.repeat(centers, num_anchors, axis=0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy NMS; areas use insightface's inclusive ``+1`` pixel convention."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return keep


def scrfd_decode(
    scores: Sequence[np.ndarray],
    bbox_distances: Sequence[np.ndarray],
    kps_offsets: Sequence[np.ndarray],
    input_size: tuple[int, int],
    *,
    score_threshold: float = 0.5,
    nms_threshold: float = 0.4,
    scale: float = 1.0,
) -> list[Face]:
    """SCRFD's raw outputs → faces in original-image pixels.

    Per stride ``s`` in (8, 16, 32) the network predicts, for each of 2 anchors at each cell of the
    ``(H/s)×(W/s)`` grid, a score, four distances (left, top, right, bottom) and five (dx, dy)
    keypoint offsets, all in units of ``s`` from the anchor centre. Boxes are ``centre ∓ distance``.
    Keypoints are ``centre + offset``. Everything is divided by ``scale``, the letterbox's resize
    factor. NMS runs across strides.

    Args:
        scores, bbox_distances, kps_offsets: one array per stride, shapes ``(N, 1)``, ``(N, 4)``,
            ``(N, 10)`` (a leading batch dim of 1 is accepted).
        input_size: ``(width, height)`` of the network input.
    """
    width, height = input_size
    all_boxes, all_scores, all_kps = [], [], []
    for stride, raw_score, raw_dist, raw_kps in zip(SCRFD_STRIDES, scores, bbox_distances, kps_offsets,
                                                     strict=True):
        centers = anchor_centers(height // stride, width // stride, stride)
        n = len(centers)
        sizes = (np.size(raw_score), np.size(raw_dist), np.size(raw_kps))
        if sizes != (n, 4 * n, 10 * n):
            raise BadInputError(
                f"SCRFD output sizes {sizes} at stride {stride} do not match the {n} anchors of a "
                f"{width}×{height} input (expected {(n, 4 * n, 10 * n)}); is this a *_bnkps SCRFD model?"
            )
        score = np.asarray(raw_score, np.float64).reshape(-1)
        dist = np.asarray(raw_dist, np.float64).reshape(-1, 4) * stride
        kps = np.asarray(raw_kps, np.float64).reshape(-1, 10) * stride
        keep = score >= score_threshold
        c = centers[keep]
        all_scores.append(score[keep])
        all_boxes.append(np.concatenate([c - dist[keep, :2], c + dist[keep, 2:]], axis=1))
        all_kps.append(np.tile(c, 5) + kps[keep])
    found_scores = np.concatenate(all_scores)
    if found_scores.size == 0:
        return []
    boxes = np.concatenate(all_boxes) / scale
    points = np.concatenate(all_kps).reshape(-1, 5, 2) / scale
    return [Face(box=boxes[i], score=float(found_scores[i]), landmarks5=points[i])
            for i in nms(boxes, found_scores, nms_threshold)]


def letterbox(image: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """insightface's SCRFD input: resize keeping aspect into the top-left of a zero canvas."""
    cv2 = cv2_module()
    width, height = input_size
    ratio = image.shape[0] / image.shape[1]
    if ratio > height / width:
        new_h, new_w = height, int(height / ratio)
    else:
        new_w, new_h = width, int(width * ratio)
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    scale = new_h / image.shape[0]
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
    return canvas, scale


class ScrfdDetector:
    """insightface SCRFD with keypoints (``*_bnkps.onnx``) on onnxruntime.

    Pre-processing is insightface's: letterbox to ``input_size`` (640×640 as in MobileFaceSwap and
    SimSwap, unless the model fixes its own), RGB, ``(x − 127.5) / 128``. The default threshold is
    MobileFaceSwap's 0.6; NMS IoU 0.4 as in insightface.
    """

    name = "scrfd"

    def __init__(self, model_path: str | Path | None = None, input_size: tuple[int, int] = (640, 640),
                 score_threshold: float = 0.6, nms_threshold: float = 0.4,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        if model_path is None:
            raise BadInputError("the scrfd detector needs model_path= the official scrfd_10g_bnkps.onnx "
                                "(insightface model zoo); it is not downloaded automatically")
        path = Path(model_path)
        if not path.is_file():
            raise BadInputError(f"SCRFD model not found: {path}; pass the path of scrfd_10g_bnkps.onnx")
        onnxruntime = require("onnxruntime", "onnxruntime", "the scrfd detector")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=list(providers))
        except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) are bare Exceptions
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            detail = detail.rpartition(" : ")[2].rpartition("failed:")[2].strip()[:160] or type(exc).__name__
            raise BadInputError(f"cannot load the SCRFD model {path}: not a valid ONNX model ({detail}); "
                                "pass an intact scrfd_10g_bnkps.onnx (download it again)") from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        fixed = model_input.shape[2:4]
        self.input_size = (fixed[1], fixed[0]) if all(isinstance(v, int) for v in fixed) else input_size
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self._order = self._output_order([o.name for o in self.session.get_outputs()])

    @staticmethod
    def _output_order(names: list[str]) -> list[int]:
        """Indices of the 9 outputs as scores×3, boxes×3, kps×3 (stride 8, 16, 32).

        The official export names them ``score_8`` … ``kps_32``; insightface itself relies on that
        order. Other exports keep the order but not the names, so index order is the fallback.
        """
        if len(names) != 3 * len(SCRFD_STRIDES):
            raise BadInputError(f"SCRFD model has {len(names)} outputs, expected 9 (scores, boxes and "
                                "keypoints at 3 strides); use a *_bnkps model, which predicts landmarks")
        wanted = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in SCRFD_STRIDES]
        if set(wanted) <= set(names):
            return [names.index(w) for w in wanted]
        return list(range(len(names)))

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        image = check_image(image_bgr)
        canvas, scale = letterbox(image, self.input_size)
        rgb = canvas[:, :, ::-1].astype(np.float32)
        blob = ((rgb - 127.5) / 128.0).transpose(2, 0, 1)[np.newaxis]
        outputs = self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})
        ordered = [outputs[i][0] if outputs[i].ndim == 3 else outputs[i] for i in self._order]
        return scrfd_decode(ordered[0:3], ordered[3:6], ordered[6:9], self.input_size,
                            score_threshold=self.score_threshold, nms_threshold=self.nms_threshold,
                            scale=scale)


# ------------------------------------------------------------------------------------------ registry

_DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "dlib": lambda **kw: DlibDetector(model="hog", **kw),
    "dlib-cnn": lambda **kw: DlibDetector(model="cnn", **kw),
    "scrfd": ScrfdDetector,
}


def available_detectors() -> list[str]:
    return sorted(_DETECTORS)


def video_detector_options(name: str) -> dict[str, Any]:
    """The options a video's detector starts from (the user's ``--detector-option`` override them).

    dlib lowers the photo's 640-px floor on the detection copy to 400 px, since the tracker carries
    faces between detections and a detection every ``--detect-every`` frames is a large part of a
    video swap's time (on 640×480: a 400×300 copy instead of 640×480).
    """
    return {"base_side": DLIB_VIDEO_BASE_SIDE} if name in ("dlib", "dlib-cnn") else {}


def get_detector(name: str = DEFAULT_DETECTOR, **kwargs: Any) -> FaceDetector:
    """Build a detector by name; options go to its constructor (e.g. ``model_path=`` for scrfd).

    Raises:
        BadInputError: unknown name or bad options.
        MissingDependencyError: the backend's package is not installed.
    """
    factory = _DETECTORS.get(name)
    if factory is None:
        choices = ", ".join(available_detectors())
        raise BadInputError(f"unknown face detector {name!r}; choose one of {choices}")
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise BadInputError(f"bad option for face detector {name!r}: {exc}") from None
