"""Fréchet distances between feature sets, and the official FID feature evaluator.

FID = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) between Gaussians fitted to two feature sets
(Heusel et al. 2017). :func:`frechet_distance` follows pytorch-fid's numerics, so that numbers are
comparable with it: ``scipy.linalg.sqrtm`` of Σ₁Σ₂; if that is not finite (a singular product, e.g.
fewer samples than dimensions) both covariances get ``eps·I`` added and it is retried; a complex
result is accepted only when the imaginary part of its diagonal is below 1e-3 (numerical noise),
otherwise it is an error rather than a silently wrong number.

The distance is only called *FID* when the features are Inception pool3 features
(:class:`FidInceptionEvaluator`, label ``fid_inception_pool3``); the same formula over other
features (e.g. the offline dlib descriptor, ``fd_dlib128``) is a Fréchet distance under that label.
With N ≈ 10K faces FID is biased upwards; N must always be reported next to it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.align import ARCFACE_TEMPLATE_112, cv2_module, estimate_similarity
from mfsbench.faces.detectors import check_image
from mfsbench.faces.types import Face
from mfsbench.optional import require

#: pytorch-fid's default regulariser for a singular covariance product.
FID_EPS = 1e-6
#: Side of the square aligned face crop fed to Inception (then resized to 299 inside the network).
FID_CROP_SIZE = 256


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    linalg = require("scipy.linalg", "scipy", "a Fréchet distance (matrix square root)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # singular input: handled by the eps retry
        return linalg.sqrtm(matrix)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = FID_EPS) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Raises:
        BadInputError: mismatched shapes, or a square root whose imaginary part is not noise.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    dim = mu1.shape[0]
    if mu1.shape != mu2.shape or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise BadInputError(f"Fréchet distance needs matching statistics: mu {mu1.shape} vs {mu2.shape}, "
                            f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(dim) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imaginary > 1e-3:
            raise BadInputError(f"the covariance square root has an imaginary component {imaginary:.3g}; "
                                "the feature sets are too small or degenerate for a Fréchet distance")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, like pytorch-fid's ``np.cov``) covariance of an ``(N, F)`` feature array.

    Raises:
        BadInputError: not 2-D, fewer than 2 rows, or non-finite values.
    """
    array = np.asarray(features, np.float64)
    if array.ndim != 2 or array.shape[0] < 2:
        raise BadInputError(f"a set distance needs an (N, F) feature array with N >= 2, "
                            f"got shape {array.shape}")
    if not np.isfinite(array).all():
        raise BadInputError("feature array contains NaN or infinite values; check the evaluator inputs")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def set_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between two ``(N, F)`` feature sets (FID when the features are pool3)."""
    a, b = np.asarray(features_a), np.asarray(features_b)
    if a.ndim == 2 and b.ndim == 2 and a.shape[1] != b.shape[1]:
        raise BadInputError(f"feature sets differ in width: {a.shape[1]} vs {b.shape[1]}; "
                            "were they computed by the same evaluator?")
    mu1, sigma1 = feature_statistics(a)
    mu2, sigma2 = feature_statistics(b)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


def fid_face_crop(image_bgr: np.ndarray, face: Face, size: int = FID_CROP_SIZE) -> np.ndarray:
    """The square face crop FID compares: a similarity transform of the five landmarks onto the
    insightface ArcFace template scaled to ``size`` (the generators' own crop geometry, without
    the shear of a full affine), bilinear, zero border. Returns BGR uint8 ``(size, size, 3)``."""
    cv2 = cv2_module()
    matrix = estimate_similarity(face.landmarks5, ARCFACE_TEMPLATE_112 * (size / 112.0))
    return cv2.warpAffine(check_image(image_bgr), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class FidInceptionEvaluator:
    """Official FID features: pytorch-fid InceptionV3 pool3 (2048-d) of the aligned face crop.

    The crop is :func:`fid_face_crop` (ArcFace template, similarity fit, ``crop_size`` px: the card's
    ``fid_crop_size``, 256 in ``ffpp_v1``) taken with the
    *target's* landmarks for both swapped and target frames, so the two sets differ only in pixels.
    Inside the network the crop is resized to 299×299 bilinearly, as pytorch-fid does.
    """

    name = "fid_inception_pool3"
    default_crop_size = FID_CROP_SIZE

    def __init__(self, weights: str | Path, crop_size: int | None = None) -> None:
        """``crop_size``: the protocol card's ``fid_crop_size`` (default 256)."""
        import torch

        self.crop_size = int(crop_size or FID_CROP_SIZE)
        from mfsbench.evalnets.inception import load_fid_inception

        self._torch = torch
        self.model, record = load_fid_inception(weights)
        self.weights_sha256: str | None = record.sha256
        self.checkpoint: Any = record

    def features_batch(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """``(N, 2048)`` float64 pool3 features of already-cropped BGR uint8 faces."""
        torch = self._torch
        batch = np.stack([c[:, :, ::-1] for c in crops_bgr]).astype(np.float32) / 255.0
        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous())
        return out.numpy().astype(np.float64)

    def features(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """``(2048,)`` float64 pool3 features of ``face`` in ``image_bgr``."""
        return self.features_batch([fid_face_crop(image_bgr, face, self.crop_size)])[0]


__all__ = [
    "FID_CROP_SIZE",
    "FidInceptionEvaluator",
    "feature_statistics",
    "fid_face_crop",
    "frechet_distance",
    "set_distance",
]
