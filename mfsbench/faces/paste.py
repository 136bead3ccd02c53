"""Putting a swapped crop back into the frame (MobileFaceSwap's ``utils/align_face.dealign``).

The crop is warped back with the inverse of the alignment matrix. The inverse is the ``pinv`` of
the 3×3 homogeneous matrix, as in the official ``back_matrix``, so a singular fit degrades instead
of raising. The blend mask is made nearly binary and eroded away from its edge, then faded over
the crop's 10-px border. Without this the crop's square outline and the network's soft mask both
show as seams in the frame (``specs/mobilefaceswap.md`` §3):

``mask > 0.001 → 1``, dilate 11×11 rect once, erode 11×11 twice, box-blur 7×7, × border fade
(ones inside a 10-px margin, box-blurred 11×11); warp both back bilinear with a zero border;
``warped·m + frame·(1−m)``, clipped and truncated to uint8 (the official ``astype``, not rounding).
"""

from __future__ import annotations

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.align import cv2_module

BORDER_MARGIN = 10
MORPH_KERNEL = 11
MASK_BLUR = 7
BORDER_BLUR = 11


def inverse_matrix(matrix: np.ndarray) -> np.ndarray:
    """Crop → image 2×3 matrix: ``pinv`` of the homogeneous 3×3 (MobileFaceSwap's ``back_matrix``)."""
    forward = np.asarray(matrix, dtype=np.float64)
    if forward.shape != (2, 3):
        raise BadInputError(f"an alignment matrix is 2×3, got shape {forward.shape}")
    full = np.zeros((3, 3))
    full[:2] = forward
    full[2, 2] = 1.0
    return np.linalg.pinv(full)[:2]


def warp_back(crop: np.ndarray, matrix: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """Plain inverse warp of ``crop`` into a zero image of the frame's size (bilinear, zero border)."""
    cv2 = cv2_module()
    height, width = frame_shape[:2]
    return cv2.warpAffine(crop, inverse_matrix(matrix), (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def blend_mask(mask_crop: np.ndarray) -> np.ndarray:
    """MobileFaceSwap's paste-back mask in crop space, float32 in [0, 1].

    Thresholding at 0.001 keeps everything the fusion head did not firmly reject. The dilate, then
    double erode, pulls the edge about 5 px inside the face region. The blurs turn the edge into a
    ramp, and the border fade keeps the crop's square outline from showing.
    """
    cv2 = cv2_module()
    mask = np.array(mask_crop, dtype=np.float32)  # a copy: the caller's mask is not modified
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise BadInputError(f"the blend mask must be 2-D (H, W), got shape {mask.shape}")
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (MORPH_KERNEL, MORPH_KERNEL))
    mask[mask > 0.001] = 1.0
    mask = cv2.dilate(mask, kernel)
    mask = cv2.erode(mask, kernel, iterations=2)
    mask = cv2.blur(mask, (MASK_BLUR, MASK_BLUR))
    border = np.zeros_like(mask)
    border[BORDER_MARGIN:-BORDER_MARGIN, BORDER_MARGIN:-BORDER_MARGIN] = 1.0
    border = cv2.blur(border, (BORDER_BLUR, BORDER_BLUR))
    return mask * border


def paste_back(frame: np.ndarray, swapped_crop: np.ndarray, matrix: np.ndarray,
               mask_crop: np.ndarray | None = None) -> np.ndarray:
    """Composite ``swapped_crop`` (aligned with ``matrix``) back into ``frame``.

    Args:
        frame: the original BGR uint8 frame.
        swapped_crop: the network's output crop, BGR, uint8 or float in 0…255.
        matrix: the 2×3 image → crop matrix returned by :func:`mfsbench.faces.align.align`.
        mask_crop: the fusion mask in crop space (H, W) in [0, 1]; ``None`` means an all-ones mask
            (models without a mask head), which still gets the eroded edge and border fade.

    Returns:
        A new uint8 frame; pixels the warped mask does not reach are the frame's own.

    Raises:
        BadInputError: mismatched shapes.
    """
    cv2 = cv2_module()
    _check_pair(frame, swapped_crop)
    if mask_crop is None:
        mask_crop = np.ones(swapped_crop.shape[:2], np.float32)
    if mask_crop.shape[:2] != swapped_crop.shape[:2]:
        raise BadInputError(f"mask {mask_crop.shape[:2]} and crop {swapped_crop.shape[:2]} differ in size")
    mask = blend_mask(mask_crop)
    back = inverse_matrix(matrix)
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpAffine(swapped_crop.astype(np.float32), back, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped_mask = cv2.warpAffine(mask, back, size, flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)[:, :, np.newaxis]
    blended = warped * warped_mask + frame.astype(np.float32) * (1.0 - warped_mask)
    return blended.clip(0, 255).astype(np.uint8)


def box_mask(size: int, blur: float) -> np.ndarray:
    """A model card's ``box`` paste mask in crop space (FaceFusion's static box mask), float32 [0, 1].

    The crop's border of ``blur_area = max(int(size·0.5·blur) // 2, 1)`` pixels is zeroed and the
    mask Gaussian-blurred with sigma ``int(size·0.5·blur)·0.25``, so the pasted crop fades into the
    frame instead of showing its square outline. ``blur`` is the card's ``run.paste.blur`` (0..1).
    """
    cv2 = cv2_module()
    amount = int(size * 0.5 * blur)
    area = max(amount // 2, 1)
    mask = np.ones((size, size), np.float32)
    mask[:area, :] = 0.0
    mask[-area:, :] = 0.0
    mask[:, :area] = 0.0
    mask[:, -area:] = 0.0
    if amount > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), amount * 0.25)
    return mask


def paste_linear(frame: np.ndarray, swapped_crop: np.ndarray, matrix: np.ndarray,
                 mask_crop: np.ndarray) -> np.ndarray:
    """Composite ``swapped_crop`` into ``frame`` with ``mask_crop`` used as is (a linear blend).

    Why not :func:`paste_back`: that one rebuilds MobileFaceSwap's eroded mask from the network's
    mask head; a card states its own mask (:func:`box_mask`), which must not be eroded again.

    Raises:
        BadInputError: mismatched shapes.
    """
    cv2 = cv2_module()
    _check_pair(frame, swapped_crop)
    if mask_crop.shape[:2] != swapped_crop.shape[:2]:
        raise BadInputError(f"mask {mask_crop.shape[:2]} and crop {swapped_crop.shape[:2]} differ in size")
    back = inverse_matrix(matrix)
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpAffine(swapped_crop.astype(np.float32), back, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped_mask = cv2.warpAffine(np.asarray(mask_crop, np.float32), back, size, flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)[:, :, np.newaxis]
    blended = warped * warped_mask + frame.astype(np.float32) * (1.0 - warped_mask)
    return blended.clip(0, 255).round().astype(np.uint8)


def _check_pair(frame: np.ndarray, swapped_crop: np.ndarray) -> None:
    """A frame and a crop that can be composited: both H×W×C with the same channels."""
    if frame.ndim != 3 or swapped_crop.ndim != 3 or frame.shape[2] != swapped_crop.shape[2]:
        raise BadInputError(f"frame {frame.shape} and crop {swapped_crop.shape} must both be H×W×C images "
                            "with the same channels")
