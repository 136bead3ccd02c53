"""Quality metrics of ``mfsbench quality``: Fréchet distance/FID, ID retrieval, pose error, and the
official (CosFace, Hopenet, pytorch-fid Inception) and offline (dlib) evaluators.

The official networks' real weights are user-supplied and never in the repo, so their tests load
*synthetic* state dicts that carry the official key names and shapes through the same strict
loaders a real file goes through, then run on a real face photo: that proves the wiring and the
shapes, not the accuracy. The offline evaluators are real pretrained models from registry packages,
so their tests assert real behaviour on real photos (same person closer than different people,
mirrored faces give mirrored yaw).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.checkpoints.formats import write_official
from mfsbench.errors import BadInputError, MissingDependencyError
from mfsbench.evalnets.hopenet import BINS, decode_degrees
from mfsbench.faces.types import Face
from mfsbench.quality.evaluators import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CosFaceIdentity,
    EvaluatorSet,
    FeatureEvaluator,
    HopenetPose,
    IdentityEvaluator,
    PoseEvaluator,
    build_evaluators,
    hopenet_input,
    id_retrieval,
    pose_error,
)
from mfsbench.quality.fid import feature_statistics, frechet_distance, set_distance
from tests.face_assets import FacePhoto, face_photos_fixture  # noqa: F401  (the fixture)

cv2 = pytest.importorskip("cv2", reason="the evaluators crop with opencv-python-headless<5")
pytest.importorskip("scipy", reason="the Fréchet distance needs scipy's sqrtm")

#: Single-face photos of three different people besides Obama.
OTHERS = ("biden", "tom_hanks", "astronaut")
OBAMAS = ("obama", "obama2", "obama3")


# ------------------------------------------------------------------------------- Fréchet / FID


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_frechet_distance_with_equal_full_covariances_is_the_mean_gap() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 5))
    sigma = a @ a.T + np.eye(5)  # full, not diagonal
    mu1, mu2 = np.zeros(5), np.array([3.0, 4.0, 0.0, 0.0, 0.0])
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(25.0, abs=1e-8)


def test_set_distance_is_zero_against_itself_and_positive_against_a_shift() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(400, 16))
    assert set_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    # a constant shift moves only the mean: the distance is exactly |shift|^2
    assert set_distance(features, features + 0.5) == pytest.approx(16 * 0.25, rel=1e-8)
    other = rng.normal(size=(400, 16)) * 2.0
    assert set_distance(features, other) > 1.0


def test_set_distance_survives_singular_covariances() -> None:
    """Fewer samples than dimensions: Σ is singular, the eps retry must give a finite ≈0 / >0."""
    rng = np.random.default_rng(3)
    few = rng.normal(size=(5, 40))
    assert abs(set_distance(few, few)) < 1e-3
    assert set_distance(few, few + 1.0) == pytest.approx(40.0, abs=1e-2)


def test_set_distance_rejects_bad_sets() -> None:
    with pytest.raises(BadInputError, match="N >= 2"):
        set_distance(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(BadInputError, match="differ in width"):
        set_distance(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(BadInputError, match="matching statistics"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    mu, sigma = feature_statistics(np.array([[0.0, 0.0], [2.0, 2.0]]))
    np.testing.assert_allclose(mu, [1.0, 1.0])
    np.testing.assert_allclose(sigma, [[2.0, 2.0], [2.0, 2.0]])  # unbiased (N − 1), like np.cov


# ------------------------------------------------------------------------------------ metrics


def test_id_retrieval_on_hand_checked_vectors() -> None:
    query = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.1]])
    gallery = np.array([[2.0, 0.0], [0.0, 3.0]])  # norms do not matter: cosine
    top1, cos = id_retrieval(query, gallery, np.array([0, 0, 1, 1]))
    # q2 ties between both rows → argmax takes row 0, so it is a miss for true row 1
    assert top1.tolist() == [True, False, False, True]
    np.testing.assert_allclose(cos, [1.0, 0.0, 1 / math.sqrt(2), 0.1 / math.hypot(1.0, 0.1)])
    with pytest.raises(BadInputError, match="empty"):
        id_retrieval(query, np.zeros((0, 2)), np.zeros(4, int))
    with pytest.raises(BadInputError, match="outside"):
        id_retrieval(query, gallery, np.array([0, 0, 2, 0]))


def test_pose_error_is_the_l2_of_the_angle_difference() -> None:
    a = np.array([[3.0, 4.0, 0.0], [1.0, 2.0, 2.0], [10.0, -5.0, 7.0]])
    b = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [10.0, -5.0, 7.0]])
    np.testing.assert_allclose(pose_error(a, b), [5.0, 3.0, 0.0])
    with pytest.raises(BadInputError, match=r"\(N, 3\)"):
        pose_error(np.zeros((2, 2)), np.zeros((2, 2)))


def test_hopenet_decoding_matches_the_spec_formula() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=3.0, size=(5, BINS))
    soft = np.exp(logits - logits.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    expected = (soft * np.arange(BINS)).sum(1) * 3 - 99  # Σ softmax·idx · 3 − 99
    got = decode_degrees(torch.from_numpy(logits)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    peaked = torch.full((1, BINS), -1e4, dtype=torch.float64)
    peaked[0, 33] = 0.0
    assert decode_degrees(peaked).item() == pytest.approx(0.0, abs=1e-9)  # bin 33 → 33·3 − 99
    assert decode_degrees(torch.zeros(1, BINS)).item() == pytest.approx(-1.5)  # mean bin 32.5


# ----------------------------------------------------------------------------- photo fixtures


@pytest.fixture(scope="module")
def faces(face_photos: dict[str, FacePhoto]) -> dict[str, tuple[np.ndarray, Face]]:
    """Name → (BGR image, its best dlib face) for the single-face photos."""
    from mfsbench.faces.detectors import DlibDetector, read_image

    detector = DlibDetector()
    out = {}
    for name in (*OBAMAS, *OTHERS):
        image = read_image(face_photos[name].path)
        found = detector.detect(image)
        assert found, f"dlib found no face in {name}"
        out[name] = (image, found[0])
    return out


def mirrored(image: np.ndarray, face: Face) -> tuple[np.ndarray, Face]:
    """The image flipped left-right and the same face box flipped with it (landmarks re-ordered)."""
    width = image.shape[1]
    x1, y1, x2, y2 = face.box
    points = face.landmarks5.copy()
    points[:, 0] = width - 1 - points[:, 0]
    points = points[[1, 0, 2, 4, 3]]  # image-left/right swap sides under a mirror
    box = np.array([width - 1 - x2, y1, width - 1 - x1, y2])
    return np.ascontiguousarray(image[:, ::-1]), Face(box=box, score=face.score, landmarks5=points)


# ----------------------------------------------------------------------- official evaluators


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic official checkpoints (random values, official names, shapes and file layouts)."""
    from mfsbench.evalnets.cosface import SphereFace20
    from mfsbench.evalnets.hopenet import Hopenet
    from mfsbench.evalnets.inception import FIDInceptionV3

    folder = tmp_path_factory.mktemp("evalnet-weights")
    torch.manual_seed(0)
    write_official(SphereFace20(), folder / "ACC99.28.pth", "cosface")
    write_official(Hopenet(), folder / "hopenet_robust_alpha1.pkl", "hopenet")  # 2017 legacy format
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, folder / "pt_inception-2015-12-05-6726825d.pth")
    return folder


def test_inception_loader_accepts_the_official_names_and_gives_pool3(
    weights_dir: Path, faces: dict[str, tuple[np.ndarray, Face]]
) -> None:
    from mfsbench.quality.fid import FID_CROP_SIZE, FidInceptionEvaluator, fid_face_crop

    path = weights_dir / "pt_inception-2015-12-05-6726825d.pth"
    state = torch.load(path, weights_only=True)
    # names and shapes as in pytorch-fid's fid_inception_v3 (torchvision Inception3, 1008 classes, no aux)
    assert tuple(state["Conv2d_1a_3x3.conv.weight"].shape) == (32, 3, 3, 3)
    assert tuple(state["Conv2d_1a_3x3.bn.running_var"].shape) == (32,)
    assert tuple(state["Mixed_5b.branch_pool.conv.weight"].shape) == (32, 192, 1, 1)
    assert tuple(state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape) == (192, 192, 1, 7)
    assert tuple(state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape) == (384, 384, 3, 1)
    assert tuple(state["fc.weight"].shape) == (1008, 2048)
    assert not any(k.startswith("AuxLogits") for k in state)

    evaluator = FidInceptionEvaluator(path)
    assert evaluator.name == "fid_inception_pool3"
    assert evaluator.weights_sha256 == sha256_file(path)
    crops = [fid_face_crop(*faces[name]) for name in ("obama", "biden")]
    assert crops[0].shape == (FID_CROP_SIZE, FID_CROP_SIZE, 3)
    feats = evaluator.features_batch(crops)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64
    assert np.isfinite(feats).all() and (feats >= 0).all()  # average of ReLU outputs
    assert not np.allclose(feats[0], feats[1])
    single = evaluator.features(*faces["obama"])
    np.testing.assert_allclose(single, feats[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("drop", r"1 missing: Mixed_6e\.branch7x7dbl_3\.bn\.running_var"),
        ("extra", r"1 unexpected: AuxLogits\.fc\.weight"),
        ("shape", r"mis-shaped: fc\.weight \(1000, 2048\) \(expected \(1008, 2048\)\)"),
    ],
)
def test_inception_loader_is_strict(tmp_path: Path, weights_dir: Path, edit: str, message: str) -> None:
    from mfsbench.evalnets.inception import load_fid_inception

    state = torch.load(weights_dir / "pt_inception-2015-12-05-6726825d.pth", weights_only=True)
    if edit == "drop":
        del state["Mixed_6e.branch7x7dbl_3.bn.running_var"]
    elif edit == "extra":
        state["AuxLogits.fc.weight"] = torch.zeros(1008, 768)
    else:
        state["fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(BadInputError, match=message):
        load_fid_inception(path)


def test_cosface_evaluator_on_a_real_photo(
    weights_dir: Path, faces: dict[str, tuple[np.ndarray, Face]]
) -> None:
    path = weights_dir / "ACC99.28.pth"
    evaluator = CosFaceIdentity(path)
    assert evaluator.weights_sha256 == sha256_file(path)
    image, face = faces["obama"]
    pair = CosFaceIdentity.preprocess(image, face)
    assert pair.shape == (2, 3, 112, 96)  # the 112×96 SphereFace crop and its mirror
    np.testing.assert_array_equal(pair[1], pair[0][:, :, ::-1])
    assert pair.min() >= -1.0 and pair.max() <= 1.0
    embedding = evaluator.embed(image, face)
    assert embedding.shape == (1024,) and embedding.dtype == np.float32
    assert float(np.linalg.norm(embedding)) == pytest.approx(1.0, abs=1e-5)
    with torch.inference_mode():
        halves = evaluator.model(torch.from_numpy(pair)).numpy().reshape(-1)
    np.testing.assert_allclose(embedding, halves / np.linalg.norm(halves), rtol=1e-5, atol=1e-6)


def test_cosface_without_flip_concat_embeds_the_crop_alone(
    weights_dir: Path, faces: dict[str, tuple[np.ndarray, Face]]
) -> None:
    """The card's id_flip_concat reaches CosFace: off, the embedding is the crop's 512-d feature."""
    image, face = faces["obama"]
    evs = build_evaluators("official", cosface=weights_dir / "ACC99.28.pth", flip_concat=False)
    assert evs.identity is not None and evs.identity.flip_concat is False
    single = CosFaceIdentity.preprocess(image, face, flip_concat=False)
    assert single.shape == (1, 3, 112, 96)
    embedding = evs.identity.embed(image, face)
    assert embedding.shape == (512,)
    with torch.inference_mode():
        feature = evs.identity.model(torch.from_numpy(single)).numpy().reshape(-1)
    np.testing.assert_allclose(embedding, feature / np.linalg.norm(feature), rtol=1e-5, atol=1e-6)
    flipped = build_evaluators("official", cosface=weights_dir / "ACC99.28.pth").identity
    assert flipped is not None and flipped.embed(image, face).shape == (1024,)


def test_fid_crop_size_comes_from_the_card(weights_dir: Path,
                                          faces: dict[str, tuple[np.ndarray, Face]]) -> None:
    """fid_crop_size is read: the evaluator crops at the card's size, and its features change with it."""
    from mfsbench.quality.card import check_card, evaluator_key
    from mfsbench.quality.protocol import load_protocol

    inception = weights_dir / "pt_inception-2015-12-05-6726825d.pth"
    small = build_evaluators("official", inception=inception, fid_crop_size=128).features
    default = build_evaluators("official", inception=inception).features
    assert small is not None and default is not None
    assert (small.crop_size, default.crop_size) == (128, 256)
    a, b = small.features(*faces["obama"]), default.features(*faces["obama"])
    assert not np.allclose(a, b)  # the numbers move with the setting
    assert evaluator_key(small) != evaluator_key(default)  # and so does the store key
    card_256, card_128 = load_protocol(), load_protocol(fid_crop_size=128)
    assert card_256.fingerprint() != card_128.fingerprint()
    evs = build_evaluators("official", inception=inception, fid_crop_size=128)
    check_card(card_128, evs)
    with pytest.raises(BadInputError, match="fid_crop_size is 256 but the evaluator uses 128"):
        check_card(card_256, evs)


def test_hopenet_evaluator_on_a_real_photo(
    weights_dir: Path, faces: dict[str, tuple[np.ndarray, Face]]
) -> None:
    path = weights_dir / "hopenet_robust_alpha1.pkl"
    evaluator = HopenetPose(path)
    assert evaluator.weights_sha256 == sha256_file(path)
    image, face = faces["biden"]
    x = hopenet_input(image, face)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    angles = evaluator.pose(image, face)
    assert angles.shape == (3,) and angles.dtype == np.float64
    assert np.all(np.abs(angles) <= 99.0)
    with torch.inference_mode():
        heads = evaluator.model(torch.from_numpy(x))
    np.testing.assert_allclose(angles, [decode_degrees(h).item() for h in heads], rtol=1e-5, atol=1e-4)


def test_hopenet_input_is_imagenet_normalised_rgb() -> None:
    """A flat BGR colour survives crop and resize unchanged, so each channel is (v/255 − mean)/std."""
    image = np.empty((300, 400, 3), np.uint8)
    image[:] = (200, 100, 50)  # B, G, R
    x = hopenet_input(image, Face(box=[150, 120, 250, 220], score=1.0, landmarks5=np.zeros((5, 2))))
    expected = (np.array([50, 100, 200]) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD  # R, G, B
    np.testing.assert_allclose(x[0].mean(axis=(1, 2)), expected, atol=1e-5)
    np.testing.assert_allclose(x[0].std(axis=(1, 2)), 0.0, atol=1e-5)


def test_build_official_without_weights_disables_each_metric_with_a_reason() -> None:
    evs = build_evaluators("official")
    assert isinstance(evs, EvaluatorSet)
    assert (evs.identity, evs.pose, evs.features) == (None, None, None)
    assert set(evs.disabled) == {"identity", "pose", "features"}
    for reason, flag in zip(evs.disabled.values(), ("--cosface-weights", "--hopenet-weights",
                                                     "--inception-weights"), strict=True):
        assert "\n" not in reason and flag in reason and "not computed" in reason


def test_build_official_with_some_weights(weights_dir: Path) -> None:
    evs = build_evaluators("official", cosface=weights_dir / "ACC99.28.pth",
                           inception=weights_dir / "pt_inception-2015-12-05-6726825d.pth")
    assert isinstance(evs.identity, IdentityEvaluator) and evs.identity.name == "cosface_sphere20"
    assert evs.identity.weights_sha256 == sha256_file(weights_dir / "ACC99.28.pth")
    assert isinstance(evs.features, FeatureEvaluator) and evs.features.name == "fid_inception_pool3"
    assert evs.pose is None and list(evs.disabled) == ["pose"]


def test_build_rejects_a_mistyped_path_and_an_unknown_kind(tmp_path: Path, weights_dir: Path) -> None:
    with pytest.raises(BadInputError, match=r"--hopenet-weights .*not found"):
        build_evaluators("official", hopenet=tmp_path / "hopenet_robust_alpha1.pkl")
    with pytest.raises(BadInputError, match="unknown evaluators"):
        build_evaluators("arcface")  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="does not match"):  # a CosFace file given as Hopenet
        build_evaluators("official", hopenet=weights_dir / "ACC99.28.pth")


# ------------------------------------------------------------------------ offline evaluators


@pytest.fixture(scope="module")
def offline() -> EvaluatorSet:
    pytest.importorskip("dlib", reason="offline evaluators need dlib-bin")
    return build_evaluators("offline")


def test_offline_set_is_complete_and_never_borrows_official_labels(offline: EvaluatorSet) -> None:
    assert isinstance(offline.identity, IdentityEvaluator)
    assert isinstance(offline.pose, PoseEvaluator)
    assert isinstance(offline.features, FeatureEvaluator)
    names = (offline.identity.name, offline.pose.name, offline.features.name)
    assert names == ("dlib_resnet128", "landmark_pnp", "fd_dlib128")
    assert not any(word in name for name in names for word in ("cosface", "hopenet", "fid", "inception"))
    assert offline.disabled == {}


def test_offline_takes_real_fid_when_the_inception_file_is_given(weights_dir: Path) -> None:
    pytest.importorskip("dlib", reason="offline evaluators need dlib-bin")
    evs = build_evaluators("offline", inception=weights_dir / "pt_inception-2015-12-05-6726825d.pth")
    assert evs.identity is not None and evs.identity.name == "dlib_resnet128"
    assert evs.features is not None and evs.features.name == "fid_inception_pool3"


def test_offline_models_load_on_the_first_face_not_at_construction() -> None:
    """A re-run over a finished cache builds the evaluators but never sees a face: it must not pay
    dlib's ~1 s model deserialisation."""
    pytest.importorskip("dlib", reason="offline evaluators need dlib-bin")
    from mfsbench.quality import offline as offline_module

    offline_module._dlib_models.cache_clear()
    build_evaluators("offline")
    assert offline_module._dlib_models.cache_info().currsize == 0


def test_offline_without_its_model_files_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("dlib", reason="offline evaluators need dlib-bin")
    from mfsbench.quality import offline as offline_module

    monkeypatch.setattr(offline_module, "dlib_model_dir", lambda: tmp_path)
    with pytest.raises(MissingDependencyError, match=r"shape_predictor_68.*missing.*reinstall"):
        build_evaluators("offline")


def test_offline_with_a_corrupt_model_file_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("dlib", reason="offline evaluators need dlib-bin")
    from mfsbench.quality import offline as offline_module

    for name in (offline_module.PREDICTOR_FILE, offline_module.DESCRIPTOR_FILE):
        (tmp_path / name).write_bytes(b"not a dlib model")
    monkeypatch.setattr(offline_module, "dlib_model_dir", lambda: tmp_path)
    offline_module._dlib_models.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r"could not load.*reinstall"):
            offline_module._dlib_models()
    finally:
        offline_module._dlib_models.cache_clear()


def test_offline_identity_puts_the_same_person_closer(
    offline: EvaluatorSet, faces: dict[str, tuple[np.ndarray, Face]]
) -> None:
    assert offline.identity is not None
    emb = {name: offline.identity.embed(*faces[name]) for name in (*OBAMAS, *OTHERS)}
    for vector in emb.values():  # id_flip_concat (on in ffpp_v1): descriptor of the chip and of its mirror
        assert vector.shape == (256,) and vector.dtype == np.float32
        assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    same = [float(emb[a] @ emb[b]) for i, a in enumerate(OBAMAS) for b in OBAMAS[i + 1:]]
    names = (*OBAMAS, *OTHERS)
    person = {n: "obama" if n in OBAMAS else n for n in names}
    different = [float(emb[a] @ emb[b]) for i, a in enumerate(names) for b in names[i + 1:]
                 if person[a] != person[b]]
    assert min(same) > max(different), (same, different)
    # retrieval: two Obama photos against a gallery of one photo per person
    gallery_names = ["obama", *OTHERS]
    gallery = np.stack([emb[n] for n in gallery_names])
    top1, _ = id_retrieval(np.stack([emb["obama2"], emb["obama3"]]), gallery, np.array([0, 0]))
    assert top1.all()
    features = offline.features.features(*faces["obama"])  # type: ignore[union-attr]
    assert features.shape == (128,) and features.dtype == np.float64  # fd_dlib128: the plain descriptor
    plain = offline.identity.descriptor(*faces["obama"])  # type: ignore[attr-defined]
    np.testing.assert_allclose(features, plain, rtol=1e-6)  # the same descriptor, memoised or not
    np.testing.assert_array_equal(offline.identity.embed(*faces["obama"]), emb["obama"])
    # the first half of the flip-concat embedding is the plain descriptor, rescaled; the mirror differs
    half = emb["obama"][:128].astype(np.float64)
    np.testing.assert_allclose(half / np.linalg.norm(half), plain, rtol=1e-5, atol=1e-6)
    assert not np.allclose(emb["obama"][128:], emb["obama"][:128], atol=1e-3)


def test_id_flip_concat_changes_the_offline_embedding(faces: dict[str, tuple[np.ndarray, Face]]) -> None:
    """The card's id_flip_concat is read: off, the embedding is the 128-d descriptor alone."""
    pytest.importorskip("dlib", reason="offline evaluators need dlib-bin")
    on = build_evaluators("offline", flip_concat=True).identity
    off = build_evaluators("offline", flip_concat=False).identity
    assert on is not None and off is not None
    a, b = on.embed(*faces["obama"]), off.embed(*faces["obama"])
    assert a.shape == (256,) and b.shape == (128,)
    assert float(np.linalg.norm(b)) == pytest.approx(1.0, abs=1e-5)


def test_offline_pose_mirrors_yaw_and_is_small_for_a_frontal_face(
    offline: EvaluatorSet, faces: dict[str, tuple[np.ndarray, Face]]
) -> None:
    assert offline.pose is not None
    for name in ("obama2", "biden", "tom_hanks"):  # visibly turned heads (|yaw| > 8° here)
        image, face = faces[name]
        yaw, pitch, roll = offline.pose.pose(image, face)
        m_yaw, m_pitch, m_roll = offline.pose.pose(*mirrored(image, face))
        assert abs(yaw) > 8.0, name
        assert np.sign(m_yaw) == -np.sign(yaw), (name, yaw, m_yaw)
        assert abs(yaw + m_yaw) < 5.0 and abs(pitch - m_pitch) < 5.0 and abs(roll + m_roll) < 5.0, name
    frontal = offline.pose.pose(*faces["obama"])  # obama.jpg faces the camera
    assert frontal.shape == (3,) and frontal.dtype == np.float64
    assert abs(frontal[0]) < 6.0


def _rot(axis: str, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


@pytest.mark.parametrize(
    "angles", [(0.0, 0.0, 0.0), (25.0, 0.0, 0.0), (-25.0, 0.0, 0.0), (-30.0, 10.0, 5.0), (10.0, -15.0, -20.0)]
)
def test_landmark_pnp_recovers_known_angles_and_their_axis_convention(
    angles: tuple[float, float, float],
) -> None:
    """Project the generic 3-D face under a known head rotation with the same pinhole camera the
    estimator assumes; solvePnP must return exactly those (yaw, pitch, roll)."""
    from mfsbench.quality.offline import MODEL_POINTS_3D, pose_from_points

    yaw, pitch, roll = angles
    head = _rot("z", roll) @ _rot("y", yaw) @ _rot("x", pitch)  # viewer frame: x right, y up, z out
    width, height = 640, 480
    focal, depth = float(width), 3000.0
    viewer = MODEL_POINTS_3D @ head.T + np.array([40.0, -20.0, -depth])  # in front of the camera
    u = width / 2 + focal * viewer[:, 0] / -viewer[:, 2]
    v = height / 2 - focal * viewer[:, 1] / -viewer[:, 2]  # image y grows downwards
    got = pose_from_points(np.stack([u, v], 1), width, height)
    np.testing.assert_allclose(got, angles, atol=1e-3)
    if yaw and not pitch and not roll:  # pure yaw > 0: the nose moves toward the image right
        nose_u, eye_mid_u = u[0], (u[2] + u[3]) / 2
        assert np.sign(nose_u - eye_mid_u) == np.sign(yaw)
