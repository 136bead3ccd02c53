"""Offline evaluators: a real pretrained face recogniser and a landmark head-pose estimator, from
registry packages only (``dlib-bin`` + ``face-recognition-models`` + OpenCV), for users without the
CosFace/Hopenet/Inception weights and for the tests.

They are *not* CosFace or Hopenet and are never labelled so: their columns are ``dlib_resnet128``
(identity), ``landmark_pnp`` (pose) and ``fd_dlib128`` (a Fréchet distance over dlib descriptors,
not an FID). Numbers under these labels are comparable only with each other.

* **Identity** — dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``, 128-d,
  LFW 99.38 % per dlib). It aligns its own 150×150 chip (padding 0.25) from dlib's 68 landmarks,
  predicted inside the given face box, exactly as the descriptor was trained; the result is
  L2-normalised so cosine similarity is a dot product, as for CosFace.
* **Pose** — the 68 landmarks' six stable points (nose tip, chin, outer eye corners, mouth corners)
  are matched to a generic 3-D face model with ``cv2.solvePnP`` (pinhole camera, focal length = image
  width, principal point = image centre, no distortion). See :class:`LandmarkPnpPose` for the
  axis convention.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.errors import MissingDependencyError
from mfsbench.faces.align import cv2_module
from mfsbench.faces.detectors import _dlib, check_image, dlib_model_dir
from mfsbench.faces.types import Face
from mfsbench.optional import install_hint

DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
#: dlib's own chip geometry for the descriptor (``compute_face_descriptor`` defaults).
CHIP_SIZE = 150
CHIP_PADDING = 0.25

#: Generic 3-D face (millimetre-like units; x to the image right, y up, z toward the camera), the
#: widely used six-point model of head-pose tutorials; with the dlib-68 index of each point.
MODEL_POINTS_3D = np.array(
    [
        [0.0, 0.0, 0.0],  # nose tip (30)
        [0.0, -330.0, -65.0],  # chin (8)
        [-225.0, 170.0, -135.0],  # outer corner of the image-left eye (36)
        [225.0, 170.0, -135.0],  # outer corner of the image-right eye (45)
        [-150.0, -150.0, -125.0],  # image-left mouth corner (48)
        [150.0, -150.0, -125.0],  # image-right mouth corner (54)
    ],
    dtype=np.float64,
)
MODEL_POINT_INDICES = (30, 8, 36, 45, 48, 54)
#: From the model frame (y up, z toward the camera) to OpenCV's camera frame (y down, z forward).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def _dlib_files() -> tuple[Any, Path, Path]:
    """(dlib, predictor path, descriptor path); checks the package and both files without loading them.

    The evaluators call this when they are built, so a missing package still fails at once with one
    line; the ~1 s deserialisation waits for the first face (a re-run over a finished cache never
    needs it).

    Raises:
        MissingDependencyError: dlib or face-recognition-models is not installed, or a model file is gone.
    """
    dlib = _dlib()
    models = dlib_model_dir()
    files = models / PREDICTOR_FILE, models / DESCRIPTOR_FILE
    for file in files:
        if not file.is_file():
            raise MissingDependencyError(
                f"dlib model file {file} is missing; reinstall it: "
                + install_hint("face-recognition-models", reinstall=True)
            )
    return dlib, *files


@functools.lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any, Any]:
    """(dlib, 68-point predictor, ResNet descriptor), loaded once per process (~1 s, 120 MB)."""
    dlib, predictor_file, descriptor_file = _dlib_files()
    try:
        predictor = dlib.shape_predictor(str(predictor_file))
        descriptor = dlib.face_recognition_model_v1(str(descriptor_file))
    except RuntimeError as exc:
        raise MissingDependencyError(
            f"dlib could not load its model files in {predictor_file.parent} ({exc}); reinstall them: "
            + install_hint("face-recognition-models", reinstall=True)
        ) from None
    return dlib, predictor, descriptor


def _shape68(rgb: np.ndarray, face: Face) -> Any:
    """dlib's 68-point shape predicted inside ``face.box`` (image pixels)."""
    dlib, predictor, _ = _dlib_models()
    x1, y1, x2, y2 = (round(float(v)) for v in face.box)
    return predictor(rgb, dlib.rectangle(x1, y1, x2, y2))


def landmarks68(image_bgr: np.ndarray, face: Face) -> np.ndarray:
    """``(68, 2)`` float64 dlib landmarks of ``face`` (predicted inside its box)."""
    rgb = np.ascontiguousarray(check_image(image_bgr)[:, :, ::-1])
    return np.array([[p.x, p.y] for p in _shape68(rgb, face).parts()], np.float64)


class DlibResnetIdentity:
    """Identity evaluator ``dlib_resnet128``: dlib's 128-d ResNet descriptor, L2-normalised.

    With ``flip_concat`` (the card's ``id_flip_concat``, on in ``ffpp_v1``) the embedding is the
    descriptor of the chip concatenated with that of its horizontal mirror (256-d), the same rule
    the card prescribes for CosFace, then L2-normalised.
    """

    name = "dlib_resnet128"
    align = "dlib_chip_150"

    def __init__(self, flip_concat: bool = True) -> None:
        _dlib_files()  # a missing package fails at construction, with one line
        self.weights_sha256: str | None = None  # a pinned package file, named by the label
        self.flip_concat = bool(flip_concat)
        self._last: tuple[bytes, np.ndarray, Any] | None = None

    def _chip(self, image_bgr: np.ndarray, face: Face) -> tuple[bytes, Any]:
        dlib, _, _ = _dlib_models()
        image = np.ascontiguousarray(check_image(image_bgr))
        digest = hashlib.blake2b(image.data, digest_size=16)
        digest.update(repr(image.shape).encode() + face.box.tobytes())
        key = digest.digest()
        if self._last is not None and self._last[0] == key:
            return key, self._last[2]
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        chip = dlib.get_face_chip(rgb, _shape68(rgb, face), size=CHIP_SIZE, padding=CHIP_PADDING)
        return key, chip

    def descriptor(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """``(128,)`` float32, unit L2 norm, from dlib's own 150×150 chip of ``face`` (no mirror).

        The runner asks for the identity embedding and the ``fd_dlib128`` features of the same face
        one after the other; a one-entry memo keyed by a digest of the pixels and the box (~1 ms)
        keeps that from running the ResNet twice.
        """
        _, _, descriptor = _dlib_models()
        key, chip = self._chip(image_bgr, face)
        if self._last is not None and self._last[0] == key:
            return self._last[1].copy()
        unit = _unit(np.asarray(descriptor.compute_face_descriptor(chip), np.float64))
        self._last = (key, unit, chip)
        return unit.copy()

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """The identity embedding: :meth:`descriptor`, concatenated with the mirrored chip's when
        ``flip_concat`` (then 256-d), unit L2 norm."""
        plain = self.descriptor(image_bgr, face)
        if not self.flip_concat:
            return plain
        _, _, descriptor = _dlib_models()
        chip = self._last[2] if self._last is not None else None
        mirrored = np.ascontiguousarray(np.asarray(chip)[:, ::-1])
        flipped = np.asarray(descriptor.compute_face_descriptor(mirrored), np.float64)
        return _unit(np.concatenate([plain.astype(np.float64), flipped]))


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


class DlibFeatures:
    """Set-distance features ``fd_dlib128``: the plain 128-d descriptor, as float64. Not Inception, not FID.

    Its "crop" is dlib's fixed 150×150 chip, which is what ``fid_crop_size`` says for offline runs.
    """

    name = "fd_dlib128"
    crop_size = CHIP_SIZE
    default_crop_size = CHIP_SIZE

    def __init__(self, identity: DlibResnetIdentity | None = None) -> None:
        self._identity = identity or DlibResnetIdentity()
        self.weights_sha256: str | None = None

    def features(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        return self._identity.descriptor(image_bgr, face).astype(np.float64)


def rotation_to_euler(rotation: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a head rotation given in the face frame (x right, y up,
    z toward the camera), decomposed as ``R = Rz(roll) · Ry(yaw) · Rx(pitch)``."""
    r = np.asarray(rotation, np.float64)
    yaw = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    pitch = math.atan2(r[2, 1], r[2, 2])
    roll = math.atan2(r[1, 0], r[0, 0])
    return np.degrees([yaw, pitch, roll])


def _camera(width: int, height: int) -> np.ndarray:
    """Pinhole intrinsics guessed from the frame: focal length = width, principal point = centre."""
    return np.array([[width, 0.0, width / 2.0], [0.0, width, height / 2.0], [0.0, 0.0, 1.0]])


def initial_guess(points: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A frontal head under the nose, at the distance its eye span implies: the start of the PnP.

    Six nearly coplanar points admit a mirrored solution (the face seen from behind, roll ≈ 180°);
    started from no guess, the solver landed there on one of the test photos. Starting from
    "frontal, in front of the camera" keeps it in the physical basin.
    """
    focal, cx, cy = camera[0, 0], camera[0, 2], camera[1, 2]
    eye_span_px = max(float(np.linalg.norm(points[3] - points[2])), 1.0)
    eye_span_model = float(MODEL_POINTS_3D[3, 0] - MODEL_POINTS_3D[2, 0])
    depth = focal * eye_span_model / eye_span_px
    rvec = np.array([[math.pi], [0.0], [0.0]])  # model (y up, z out) → camera (y down, z forward)
    tvec = np.array([[(points[0, 0] - cx) * depth / focal], [(points[0, 1] - cy) * depth / focal], [depth]])
    return rvec, tvec


def pose_from_points(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(yaw, pitch, roll) in degrees from the six image points of :data:`MODEL_POINT_INDICES`
    (``(6, 2)`` pixels) in a ``width``×``height`` frame; NaN when ``solvePnP`` fails (the runner
    turns a non-finite pose into a skipped frame with its reason, never a number)."""
    cv2 = cv2_module()
    image_points = np.ascontiguousarray(points, dtype=np.float64).reshape(6, 2)
    camera = _camera(width, height)
    rvec, tvec = initial_guess(image_points, camera)
    ok, rvec, _tvec = cv2.solvePnP(MODEL_POINTS_3D, image_points, camera, np.zeros(4), rvec, tvec,
                                   useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return np.full(3, np.nan)
    rotation, _ = cv2.Rodrigues(rvec)
    # X_cam = R·X_model + t; the viewer's frame (y up, z out) is diag(1, −1, −1)·X_cam, so the
    # head's rotation from its canonical frontal pose is diag(1, −1, −1)·R (identity when frontal)
    return rotation_to_euler(_FLIP_YZ @ rotation)


class LandmarkPnpPose:
    """Pose evaluator ``landmark_pnp``: dlib 68 landmarks + ``cv2.solvePnP`` on a generic 3-D face.

    Axis convention (degrees, viewer's frame: x to the image right, y up, z toward the camera;
    ``R = Rz(roll) · Ry(yaw) · Rx(pitch)``, identity for a face looking straight at the camera):

    * **yaw** > 0: the face turns toward the image's right (the subject's own left);
    * **pitch** > 0: the face tilts down (chin toward the chest);
    * **roll** > 0: the head tilts counter-clockwise as seen in the image (top toward image left).

    A horizontal mirror negates yaw and roll and keeps pitch. The generic model and the guessed
    intrinsics bias absolute angles — pitch reads 6–25° on the near-frontal test photos — so only
    differences are meaningful: pose *error* (swap vs. target, same face box) cancels that bias.
    """

    name = "landmark_pnp"

    def __init__(self) -> None:
        _dlib_files()
        self.weights_sha256: str | None = None

    def pose(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """``(3,)`` float64 yaw, pitch, roll in degrees; NaN if ``solvePnP`` reports failure (counted
        by the runner as a skipped frame, reason "pose fit failed")."""
        image = check_image(image_bgr)
        points = landmarks68(image, face)[list(MODEL_POINT_INDICES)]
        return pose_from_points(points, image.shape[1], image.shape[0])


__all__ = [
    "MODEL_POINTS_3D",
    "DlibFeatures",
    "DlibResnetIdentity",
    "LandmarkPnpPose",
    "landmarks68",
    "pose_from_points",
    "rotation_to_euler",
]
