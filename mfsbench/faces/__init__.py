"""Face analysis for the swap pipeline: detect → five landmarks → align → (swap) → paste back.

Detectors are pluggable (:func:`get_detector`); the alignments and the paste-back reproduce each
family's official pre- and post-processing. Heavy backends (dlib, onnxruntime) are imported only
when a detector that needs them is built.
"""

from __future__ import annotations

from mfsbench.faces.align import (
    ALIGN_METHODS,
    ARCFACE_TEMPLATE_112,
    SIMSWAP_TEMPLATES_112,
    COSFACE_TEMPLATE_96x112,
    align,
    align_face,
    estimate_affine_lstsq,
    estimate_alignment,
    estimate_similarity,
    hopenet_crop,
    transform_points,
)
from mfsbench.faces.detectors import (
    DEFAULT_DETECTOR,
    FaceDetector,
    available_detectors,
    check_image,
    get_detector,
    read_image,
)
from mfsbench.faces.paste import blend_mask, inverse_matrix, paste_back, warp_back
from mfsbench.faces.types import LANDMARK_NAMES, Face

__all__ = [
    "ALIGN_METHODS",
    "ARCFACE_TEMPLATE_112",
    "DEFAULT_DETECTOR",
    "LANDMARK_NAMES",
    "SIMSWAP_TEMPLATES_112",
    "COSFACE_TEMPLATE_96x112",
    "Face",
    "FaceDetector",
    "align",
    "align_face",
    "available_detectors",
    "blend_mask",
    "check_image",
    "estimate_affine_lstsq",
    "estimate_alignment",
    "estimate_similarity",
    "get_detector",
    "hopenet_crop",
    "inverse_matrix",
    "paste_back",
    "read_image",
    "transform_points",
    "warp_back",
]
