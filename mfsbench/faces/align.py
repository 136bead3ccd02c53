"""Five-point alignment, exactly as each model family was trained on it.

A swap network only works on crops that look like its training crops, so each family keeps its own
template *and* its own fit (``specs/mobilefaceswap.md`` §4, ``specs/simswap_arcface_deepfakes.md`` §4,
``specs/faceshifter_fsgan_eval_nets.md`` §6–7):

* ``arcface`` — MobileFaceSwap: the 112×112 ArcFace template scaled by ``size/112``, fitted with a
  **full 6-DoF least-squares affine** (the official ``np.linalg.lstsq``), so the crop may shear.
* ``simswap`` — SimSwap 224: five insightface multi-pose templates (profile-left … profile-right)
  scaled by ``size/112``; a similarity transform is fitted to each and the lowest summed point error
  wins, so profile faces are not forced onto the frontal layout.
* ``cosface`` — the SphereFace/CosFace evaluation net: similarity transform onto the 96×112
  reference points; the crop is ``size·96/112`` wide and ``size`` high (96×112 at ``size=112``).

Hopenet does not align at all: :func:`hopenet_crop` reproduces its loose box crop.
All warps are ``cv2.warpAffine`` bilinear with a zero border, as in the official scripts.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.optional import require

AlignMethod = Literal["arcface", "simswap", "cosface"]
ALIGN_METHODS: tuple[str, ...] = ("arcface", "simswap", "cosface")

#: The classic 96×112 five-point reference (SphereFace/CosFace, foamliu's REFERENCE_FACIAL_POINTS).
COSFACE_TEMPLATE_96x112 = np.array(
    [
        [30.2946, 51.6963],
        [65.5318, 51.5014],
        [48.0252, 71.7366],
        [33.5493, 92.3655],
        [62.7299, 92.2041],
    ],
    dtype=np.float64,
)

#: insightface's 112×112 ArcFace template: the 96×112 reference shifted right by 8 px.
ARCFACE_TEMPLATE_112 = COSFACE_TEMPLATE_96x112 + np.array([8.0, 0.0])

#: insightface's five multi-pose 112×112 templates used by SimSwap (``src1``…``src5``).
SIMSWAP_TEMPLATES_112 = np.array(
    [
        # left profile
        [[51.642, 50.115], [57.617, 49.990], [35.740, 69.007], [51.157, 89.050], [57.025, 89.702]],
        # left
        [[45.031, 50.118], [65.568, 50.872], [39.677, 68.111], [45.177, 86.190], [64.246, 86.758]],
        # frontal
        [[39.730, 51.138], [72.270, 51.138], [56.000, 68.493], [42.463, 87.010], [69.537, 87.010]],
        # right
        [[46.845, 50.872], [67.382, 50.118], [72.737, 68.111], [48.167, 86.758], [67.236, 86.190]],
        # right profile
        [[54.796, 49.990], [60.771, 50.115], [76.673, 69.007], [55.388, 89.702], [61.257, 89.050]],
    ],
    dtype=np.float64,
)


def cv2_module() -> Any:
    """Import OpenCV or say which extra brings it (one line, no traceback)."""
    return require("cv2", "opencv-python-headless", "face alignment")


def _points(points: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 3:
        raise BadInputError(f"{what} must be an (N, 2) array with N >= 3 points, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise BadInputError(f"{what} contain NaN or infinite coordinates; check the detector output")
    return array


def estimate_affine_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """6-DoF least-squares affine ``src → dst`` (2×3), MobileFaceSwap's ``get_affine_transform_matrix``.

    Solves ``[x y 1] @ A = [x' y' 1]`` with ``np.linalg.lstsq``. As in the official code, a rank-2
    system (all points on a line through the origin) keeps the linear part and drops the translation.

    Raises:
        BadInputError: for fewer than 3 points, mismatched shapes, or rank < 2 (coincident points).
    """
    src_pts, dst_pts = _points(src, "source points"), _points(dst, "destination points")
    if src_pts.shape != dst_pts.shape:
        raise BadInputError(f"point sets differ in shape: {src_pts.shape} vs {dst_pts.shape}")
    ones = np.ones((len(src_pts), 1))
    solution, _, rank, _ = np.linalg.lstsq(np.hstack([src_pts, ones]), np.hstack([dst_pts, ones]), rcond=None)
    matrix = solution[:, :2].T.copy()  # rows: x' = a x + b y + c, y' = d x + e y + f
    if rank == 2:
        matrix[:, 2] = 0.0
    elif rank < 2:
        raise BadInputError("landmarks are degenerate (all at one point); the detector output is unusable")
    return matrix


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``src → dst`` (2×3): Umeyama (1991), as ``skimage.SimilarityTransform``.

    Rotation, uniform scale and translation only — the crop keeps the face's proportions, which is
    what SimSwap's and CosFace's training crops did (``skimage`` / MATLAB ``cp2tform``).

    Raises:
        BadInputError: for mismatched shapes or points with no spread.
    """
    src_pts, dst_pts = _points(src, "source points"), _points(dst, "destination points")
    if src_pts.shape != dst_pts.shape:
        raise BadInputError(f"point sets differ in shape: {src_pts.shape} vs {dst_pts.shape}")
    src_mean, dst_mean = src_pts.mean(0), dst_pts.mean(0)
    src_c, dst_c = src_pts - src_mean, dst_pts - dst_mean
    covariance = dst_c.T @ src_c / len(src_pts)
    u, singular, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(covariance) < 0:  # reflection: flip the weakest axis (Umeyama eq. 39)
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / len(src_pts)
    if src_var <= 1e-12:
        raise BadInputError("landmarks are degenerate (all at one point); the detector output is unusable")
    scale = float(singular @ d) / src_var
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine to ``(N, 2)`` points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def template_for(method: str, size: int) -> np.ndarray:
    """The template(s) of ``method`` in pixels of a ``size`` crop: (5, 2), or (5, 5, 2) for simswap."""
    if method == "arcface":
        return ARCFACE_TEMPLATE_112 * (size / 112.0)
    if method == "simswap":
        return SIMSWAP_TEMPLATES_112 * (size / 112.0)
    if method == "cosface":
        return COSFACE_TEMPLATE_96x112 * (size / 112.0)
    raise BadInputError(f"unknown alignment {method!r}; choose one of {', '.join(ALIGN_METHODS)}")


def crop_shape(method: str, size: int) -> tuple[int, int]:
    """``(width, height)`` of the aligned crop: square except CosFace's 96:112."""
    if method == "cosface":
        return round(size * 96 / 112), size
    return size, size


def estimate_alignment(landmarks: np.ndarray, method: str, size: int) -> np.ndarray:
    """The 2×3 matrix mapping image pixels to ``method``'s crop of side ``size``."""
    if size <= 0:
        raise BadInputError(f"alignment size must be positive, got {size}")
    lmk = _points(landmarks, "landmarks")
    if lmk.shape != (5, 2):
        raise BadInputError(f"alignment needs 5 landmarks (5, 2), got shape {lmk.shape}")
    template = template_for(method, size)
    if method == "arcface":
        return estimate_affine_lstsq(lmk, template)
    if method == "cosface":
        return estimate_similarity(lmk, template)
    best, best_error = None, np.inf
    for candidate in template:  # simswap: lowest summed Euclidean error wins
        matrix = estimate_similarity(lmk, candidate)
        error = float(np.linalg.norm(transform_points(matrix, lmk) - candidate, axis=1).sum())
        if error < best_error:
            best, best_error = matrix, error
    assert best is not None
    return best


def align(image: np.ndarray, landmarks: np.ndarray, method: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` so ``landmarks`` land on ``method``'s template.

    Returns:
        ``(crop, matrix)``: the aligned crop (``crop_shape(method, size)``, same dtype as ``image``)
        and the 2×3 image → crop matrix that :func:`mfsbench.faces.paste.paste_back` inverts.

    Raises:
        BadInputError: unknown method, bad size, or unusable landmarks.
    """
    cv2 = cv2_module()
    matrix = estimate_alignment(landmarks, method, size)
    crop = cv2.warpAffine(image, matrix, crop_shape(method, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, matrix


#: The name the swap pipeline imports.
align_face = align


def align_to_points(image: np.ndarray, landmarks: np.ndarray, points: np.ndarray, size: int, *,
                    fit: str = "similarity", border: str = "replicate") -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` onto explicit template ``points`` (pixels of a ``size`` crop).

    Why a separate path: a model card pins its own template (``specs/plugin_models.md`` §1: the same
    weights are run with different points by different tools), and the community swappers were
    trained on InsightFace's ``norm_crop`` / FaceFusion's ``estimateAffinePartial2D`` crops, which
    are similarity fits (no shear), unlike MobileFaceSwap's 6-DoF fit. The border is replicated as
    FaceFusion's ``warp_face_by_face_landmark_5`` does, so a face near the frame edge does not feed
    black into the network. A card's ``target.warp`` may ask for the zoo's own crop instead
    (``fit = "affine"``: :func:`estimate_affine_lstsq`; ``border = "zero"``), so a card for the
    student's export crops as the zoo does.

    Returns:
        ``(crop, matrix)`` as :func:`align`.

    Raises:
        BadInputError: bad size or unusable landmarks.
    """
    if size <= 0:
        raise BadInputError(f"alignment size must be positive, got {size}")
    lmk = _points(landmarks, "landmarks")
    template = _points(points, "template points")
    if lmk.shape != (5, 2) or template.shape != (5, 2):
        raise BadInputError(f"alignment needs 5 landmarks and 5 template points, got {lmk.shape} and "
                            f"{template.shape}")
    matrix = fit_points(lmk, template, fit)
    return warp_to(image, matrix, size, border), matrix


def warp_to(image: np.ndarray, matrix: np.ndarray, size: int, border: str = "replicate") -> np.ndarray:
    """``image`` under the 2×3 ``matrix`` as a ``size``² crop, bilinear; outside the image ``border``
    is ``"zero"`` (the zoo's black) or ``"replicate"`` (FaceFusion's edge pixels). The one warp of a
    card's crop, whoever takes it (swap, device crops, the distillation teacher)."""
    cv2 = cv2_module()
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT if border == "zero" else cv2.BORDER_REPLICATE,
                          borderValue=0)


def fit_points(src: np.ndarray, dst: np.ndarray, fit: str = "similarity") -> np.ndarray:
    """The 2×3 map of ``src`` points onto ``dst``: ``"similarity"`` (4 DoF) or ``"affine"`` (6 DoF)."""
    if fit not in ("similarity", "affine"):
        raise BadInputError(f"unknown fit {fit!r}; use similarity or affine")
    return estimate_affine_lstsq(src, dst) if fit == "affine" else estimate_similarity(src, dst)


def hopenet_crop(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Hopenet's loose head crop from a detector box (``deep-head-pose`` dlib video script).

    The box is widened by half its width on each side, raised by ¾ of its height and lowered by ¼,
    then clipped to the image and truncated to ints, so the crop holds the whole head the pose
    network was trained on. Returns the crop and its ``(x1, y1, x2, y2)``.

    Raises:
        BadInputError: when the widened box does not overlap the image.
    """
    x_min, y_min, x_max, y_max = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    width, height = abs(x_max - x_min), abs(y_max - y_min)
    x_min -= 2 * width / 4
    x_max += 2 * width / 4
    y_min -= 3 * height / 4
    y_max += height / 4
    x_min, y_min = max(x_min, 0.0), max(y_min, 0.0)
    x_max, y_max = min(float(image.shape[1]), x_max), min(float(image.shape[0]), y_max)
    x1, y1, x2, y2 = int(x_min), int(y_min), int(x_max), int(y_max)
    if x2 <= x1 or y2 <= y1:
        raise BadInputError(f"face box {tuple(np.round(box, 1))} lies outside the {image.shape[1]}×"
                            f"{image.shape[0]} image")
    return image[y1:y2, x1:x2], (x1, y1, x2, y2)
