"""Reference checks of the official evaluators that need no official weights (audit E3).

The other evaluator tests run CosFace, Hopenet and the FID Inception on synthetic random weights:
they show the loaders and shapes work, not that the numbers are the official ones. What can be
checked without the weights is checked here against references that do not come from this repo:

* the Fréchet distance against closed forms for Gaussians (commuting, scaled and rank-one
  covariances) and against a square root computed by symmetric eigendecomposition, including the
  ``eps`` retry pytorch-fid applies when the square root of the product is not finite;
* Hopenet's decoding ``Σ softmax·idx · 3 − 99`` and the pose error on hand-made logits, and its
  consistency with the official training labels (``np.digitize`` over 3° bins from −99°);
* CosFace's flip-concatenation and cosine retrieval on hand-made features, and its 112×96 input
  on a crop whose landmarks sit exactly on the reference points;
* the structure of the networks: every state-dict name and shape of the FID InceptionV3 derived from
  the architecture (torchvision's Inception3 layout, 1008 classes, no auxiliary head, which is what
  pytorch-fid builds and loads its ``pt_inception-2015-12-05`` file into), anchored on torchvision's
  published parameter count (27,161,264 with the auxiliary head and 1,000 classes); the FID-specific
  pooling of each block; the parameter counts of Hopenet and SphereFace-20 from their layer tables
  (``faceshifter_fsgan_eval_nets.md`` §6–§7).

**Not checked here, and not checkable without the official weights:** the reference OUTPUTS of the
official networks (pool3 features of pytorch-fid's Inception, Hopenet's angles, CosFace's
embeddings on real faces). Those need ``pt_inception-2015-12-05-6726825d.pth``,
``hopenet_robust_alpha1.pkl`` and ``ACC99.28.pth``, which mfsbench never downloads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mfsbench.errors import BadInputError
from mfsbench.evalnets.hopenet import BINS, Hopenet, decode_degrees
from mfsbench.quality.fid import FID_EPS, frechet_distance, set_distance

scipy_linalg = pytest.importorskip("scipy.linalg", reason="the Fréchet distance needs scipy's sqrtm")


# --------------------------------------------------------------------- (a) the Fréchet distance


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix by eigendecomposition (negative round-off clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((Σ₁Σ₂)^½) = Σ √eig(Σ₁^½ Σ₂ Σ₁^½): Σ₁Σ₂ is similar to that symmetric PSD matrix."""
    root = _psd_sqrt(sigma1)
    values = np.linalg.eigvalsh(root @ sigma2 @ root)
    return float(np.sum(np.sqrt(np.clip(values, 0.0, None))))


def _reference_fd(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                  offset: float = 0.0) -> float:
    """‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr((Σ₁Σ₂)^½), the cross term optionally on Σ + offset·I
    (pytorch-fid's retry regularises only the cross term, not the traces)."""
    eye = np.eye(len(mu1)) * offset
    diff = mu1 - mu2
    cross = _trace_sqrt_product(sigma1 + eye, sigma2 + eye)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * cross)


def _random_psd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def test_frechet_distance_one_dimensional_closed_form() -> None:
    """In 1-D the distance is (μ₁ − μ₂)² + (σ₁ − σ₂)² with σ the standard deviations."""
    got = frechet_distance(np.array([1.5]), np.array([[4.0]]), np.array([-0.5]), np.array([[0.25]]))
    assert got == pytest.approx(2.0**2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_frechet_distance_commuting_covariances_closed_form() -> None:
    """Σ₁ = Q diag(s₁) Qᵀ, Σ₂ = Q diag(s₂) Qᵀ (full, non-diagonal, sharing eigenvectors):
    the distance is ‖μ₁ − μ₂‖² + Σ (s₁ + s₂ − 2√(s₁s₂))."""
    rng = np.random.default_rng(10)
    for dim in (2, 7, 40):
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        s1, s2 = rng.uniform(0.05, 4.0, dim), rng.uniform(0.05, 4.0, dim)
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
        sigma1, sigma2 = (q * s1) @ q.T, (q * s2) @ q.T
        expected = float(np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)))
        assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9), dim


def test_frechet_distance_scaled_covariance_closed_form() -> None:
    """Σ₂ = c²Σ₁ gives Tr((Σ₁Σ₂)^½) = c·Tr Σ₁, so the distance is ‖Δμ‖² + (1 − c)² Tr Σ₁."""
    rng = np.random.default_rng(11)
    sigma = _random_psd(rng, 12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    c = 1.7
    expected = float(np.sum((mu1 - mu2) ** 2) + (1 - c) ** 2 * np.trace(sigma))
    assert frechet_distance(mu1, sigma, mu2, c * c * sigma) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("dim", [3, 16, 64])
def test_frechet_distance_matches_an_eigendecomposition_reference(dim: int) -> None:
    """General full covariances: scipy's Schur-based ``sqrtm`` against a symmetric eigen square root."""
    rng = np.random.default_rng(dim)
    sigma1, sigma2 = _random_psd(rng, dim), _random_psd(rng, dim)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    expected = _reference_fd(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8, abs=1e-9)
    # and from samples: set_distance = the same formula on np.cov-style (N − 1) statistics
    a, b = rng.normal(size=(200, dim)), rng.normal(size=(150, dim)) * 1.3 + 0.2
    ref = _reference_fd(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert set_distance(a, b) == pytest.approx(ref, rel=1e-8)


# Two samples per set in 17 dimensions (integer features): each covariance is rank one,
# Σ₁ = ½aaᵀ and Σ₂ = ½bbᵀ with a, b the differences of the two rows, and a·b = 5.
_RANK_ONE_X = np.array([[1, -1, -1, 1, 1, 1, -1, -1, 0, -2, 2, 2, 0, -2, -1, 1, 0],
                        [2, 0, 0, 2, 2, 1, 0, -1, 2, -1, 0, 2, 0, 0, 1, -2, 1]], dtype=np.float64)
_RANK_ONE_Y = np.array([[-1, -1, -1, 2, -1, -2, 1, 0, 1, 0, -2, 1, -1, 0, 0, 1, -1],
                        [0, -1, 0, 0, 1, -1, 1, -1, -2, 1, -1, 1, 1, 0, 1, -1, 1]], dtype=np.float64)


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_frechet_distance_rank_one_near_singular_case() -> None:
    """Rank-one covariances: Σ₁Σ₂ = ¼(a·b)·abᵀ has the single non-zero eigenvalue ¼(a·b)², so
    Tr((Σ₁Σ₂)^½) = ½|a·b| and the distance is ‖Δμ‖² + ½‖a‖² + ½‖b‖² − |a·b| in closed form.

    The product has 16 zero eigenvalues; on scipy 1.17 its ``sqrtm`` is not finite, which is the
    case pytorch-fid's ``eps·I`` retry exists for. Whatever this scipy does, the result must be the
    eigen reference of the branch pytorch-fid's rule takes, and within the retry's O(√eps) of the
    exact value.
    """
    x, y = _RANK_ONE_X, _RANK_ONE_Y
    a, b = x[1] - x[0], y[1] - y[0]
    mu1, mu2 = x.mean(0), y.mean(0)
    sigma1, sigma2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    np.testing.assert_allclose(sigma1, np.outer(a, a) / 2)
    exact = float(np.sum((mu1 - mu2) ** 2) + a @ a / 2 + b @ b / 2 - abs(a @ b))
    retried = not np.isfinite(scipy_linalg.sqrtm(sigma1 @ sigma2)).all()
    expected = _reference_fd(mu1, sigma1, mu2, sigma2, FID_EPS if retried else 0.0)
    got = set_distance(x, y)
    assert got == pytest.approx(expected, abs=1e-6)
    assert got == pytest.approx(exact, abs=2e-2)


def test_frechet_distance_eps_retry_regularises_only_the_cross_term(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the first square root comes back non-finite, as it does for a singular
    product. The distance must then be computed with ``sqrtm((Σ₁ + εI)(Σ₂ + εI))`` and the
    *unregularised* traces, pytorch-fid's rule, and equal the eigen reference of that expression."""
    rng = np.random.default_rng(12)
    sigma1, sigma2 = _random_psd(rng, 6), _random_psd(rng, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    real_sqrtm = scipy_linalg.sqrtm
    seen: list[np.ndarray] = []

    def failing_first(matrix: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        seen.append(np.array(matrix))
        if len(seen) == 1:
            return np.full_like(matrix, np.inf)
        return real_sqrtm(matrix, *args, **kwargs)

    monkeypatch.setattr(scipy_linalg, "sqrtm", failing_first)
    eps = 1e-2  # large enough that regularising the traces too would be visible
    got = frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)
    assert len(seen) == 2
    offset = np.eye(6) * eps
    np.testing.assert_allclose(seen[1], (sigma1 + offset) @ (sigma2 + offset), rtol=1e-12)
    assert got == pytest.approx(_reference_fd(mu1, sigma1, mu2, sigma2, eps), rel=1e-9)
    assert abs(got - _reference_fd(mu1, sigma1 + offset, mu2, sigma2 + offset, eps)) > 1e-2


def test_frechet_distance_rejects_a_truly_complex_square_root() -> None:
    """Σ₂ = −I (not a covariance): (Σ₁Σ₂)^½ = iI, an imaginary part far above noise. pytorch-fid
    raises rather than return a number; so must we."""
    with pytest.raises(BadInputError, match="imaginary"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), -np.eye(3))


# ------------------------------------------------------------------------ (b) Hopenet decoding


def _logits(probabilities: dict[int, float]) -> torch.Tensor:
    """(1, 66) float64 logits whose softmax is exactly ``probabilities`` (other bins ~0)."""
    row = torch.full((1, BINS), -1e4, dtype=torch.float64)
    for index, p in probabilities.items():
        row[0, index] = math.log(p)
    return row


def test_hopenet_decoding_on_hand_made_distributions() -> None:
    """E[idx]·3 − 99 for distributions whose expectation is known by hand."""
    assert decode_degrees(_logits({10: 0.25, 50: 0.75})).item() == pytest.approx(21.0)  # E = 40
    assert decode_degrees(_logits({30: 0.5, 36: 0.5})).item() == pytest.approx(0.0)  # E = 33
    assert decode_degrees(_logits({0: 1.0})).item() == pytest.approx(-99.0)
    assert decode_degrees(_logits({65: 1.0})).item() == pytest.approx(96.0)
    # a softmax: adding a constant to every logit changes nothing
    logits = torch.linspace(-3.0, 2.0, BINS, dtype=torch.float64)[None]
    assert decode_degrees(logits + 7.5).item() == pytest.approx(decode_degrees(logits).item(), abs=1e-12)


def test_hopenet_decoding_agrees_with_the_official_training_labels() -> None:
    """Training labels are ``np.digitize(angle, range(-99, 102, 3)) − 1``; a network certain of
    label k decodes to 3k − 99, the lower edge of the 3° bin holding the angle."""
    bins = np.array(range(-99, 102, 3))
    assert len(bins) == BINS + 1
    for angle in (-98.5, -45.0, -0.1, 0.0, 1.4, 29.99, 60.0, 98.9):
        label = int(np.digitize(angle, bins)) - 1
        decoded = decode_degrees(_logits({label: 1.0})).item()
        assert decoded <= angle < decoded + 3, angle


class _FixedHeads(nn.Module):
    """Stands in for Hopenet's forward: returns hand-made (yaw, pitch, roll) logits."""

    def __init__(self, heads: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.heads


def test_hopenet_degrees_order_and_pose_error_on_hand_made_logits() -> None:
    """Hopenet's heads are yaw, pitch, roll in that order; pose error is the L2 of the difference."""
    from mfsbench.quality.evaluators import pose_error

    target = _FixedHeads((_logits({43: 1.0}), _logits({33: 1.0}), _logits({29: 1.0})))  # 30, 0, −12
    swapped = _FixedHeads((_logits({39: 1.0}), _logits({37: 1.0}), _logits({29: 1.0})))  # 18, 12, −12
    x = torch.zeros(1, 3, 224, 224)
    pose_t = Hopenet.degrees(target, x).numpy()  # type: ignore[arg-type]
    pose_s = Hopenet.degrees(swapped, x).numpy()  # type: ignore[arg-type]
    np.testing.assert_allclose(pose_t, [[30.0, 0.0, -12.0]], atol=1e-9)
    np.testing.assert_allclose(pose_s, [[18.0, 12.0, -12.0]], atol=1e-9)
    np.testing.assert_allclose(pose_error(pose_s, pose_t), [math.sqrt(12.0**2 + 12.0**2)], rtol=1e-12)


# --------------------------------------------------------------- (c) CosFace flip-concat retrieval


def test_cosface_input_is_the_crop_and_its_mirror_in_minus_one_one() -> None:
    """Landmarks exactly on the 96×112 reference points: the similarity fit is the identity, so the
    input must be the image itself (RGB, (x − 0.5)/0.5) and its horizontal mirror."""
    pytest.importorskip("cv2", reason="the CosFace crop is warped with OpenCV")
    from mfsbench.faces.types import Face
    from mfsbench.quality.evaluators import CosFaceIdentity

    reference = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366],
                          [33.5493, 92.3655], [62.7299, 92.2041]])  # the spec's 96×112 points
    rng = np.random.default_rng(20)
    image = rng.integers(0, 256, size=(112, 96, 3), dtype=np.uint8)
    face = Face(box=np.array([0.0, 0.0, 96.0, 112.0]), score=1.0, landmarks5=reference)
    pair = CosFaceIdentity.preprocess(image, face, flip_concat=True)
    assert pair.shape == (2, 3, 112, 96) and pair.dtype == np.float32
    expected = (image[:, :, ::-1].astype(np.float64) / 255.0 - 0.5) / 0.5
    np.testing.assert_allclose(pair[0], expected.transpose(2, 0, 1), atol=2.5 / 255)
    np.testing.assert_array_equal(pair[1], pair[0][:, :, ::-1])
    single = CosFaceIdentity.preprocess(image, face, flip_concat=False)
    np.testing.assert_array_equal(single, pair[:1])


class _Projection(nn.Module):
    """A hand-made 'network': a fixed linear map of the flattened input to 4 features."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(21)
        self.matrix = torch.randn(3 * 112 * 96, 4, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.matrix


def test_cosface_embedding_is_the_normalised_concatenation_image_then_mirror(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``embed`` = [f(img), f(mirror)] / ‖·‖ (MuggleWang's ``extractDeepFeature`` order)."""
    from mfsbench.quality.evaluators import CosFaceIdentity

    rng = np.random.default_rng(22)
    pair = rng.uniform(-1, 1, size=(2, 3, 112, 96)).astype(np.float32)
    def preprocess(image: np.ndarray, face: object, flip_concat: bool = True) -> np.ndarray:
        return pair[: 2 if flip_concat else 1]

    monkeypatch.setattr(CosFaceIdentity, "preprocess", staticmethod(preprocess))
    identity = object.__new__(CosFaceIdentity)  # no weights: the network is the projection above
    identity.model = _Projection()
    identity.flip_concat = True
    feats = (torch.from_numpy(pair).flatten(1).double() @ identity.model.matrix.double()).numpy()
    expected = np.concatenate([feats[0], feats[1]])
    expected /= np.linalg.norm(expected)
    got = identity.embed(np.zeros((4, 4, 3), np.uint8), None)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    identity.flip_concat = False
    np.testing.assert_allclose(identity.embed(np.zeros((4, 4, 3), np.uint8), None),  # type: ignore[arg-type]
                               feats[0] / np.linalg.norm(feats[0]), rtol=1e-4, atol=1e-6)


def test_cosine_retrieval_on_hand_made_flip_concatenated_features() -> None:
    """cos([a, a'], [b, b']) = (a·b + a'·b') / (‖[a, a']‖·‖[b, b']‖), and the mirror half can decide
    the nearest gallery identity."""
    from mfsbench.quality.evaluators import id_retrieval

    query_img, query_flip = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    gallery = {
        0: (np.array([1.0, 0.1]), np.array([-1.0, 0.0])),  # like the image, unlike the mirror
        1: (np.array([0.8, 0.6]), np.array([0.0, 1.0])),  # a bit less like the image, like the mirror
    }
    query = np.concatenate([query_img, query_flip])[None]
    rows = np.stack([np.concatenate(gallery[i]) for i in (0, 1)])

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    expected = [cos(query[0], rows[i]) for i in (0, 1)]
    assert expected[1] > expected[0]
    top1, to_true = id_retrieval(query, rows, np.array([1]))
    assert top1.tolist() == [True]
    assert to_true[0] == pytest.approx(expected[1], rel=1e-12)
    # the image half alone picks identity 0: flip-concatenation changes the answer here
    top1_single, _ = id_retrieval(query_img[None], np.stack([gallery[i][0] for i in (0, 1)]), np.array([1]))
    assert top1_single.tolist() == [False]
    # cosine ignores the scale of either side
    top1_scaled, to_true_scaled = id_retrieval(query * 3.0, rows * np.array([[0.5], [7.0]]), np.array([1]))
    assert top1_scaled.tolist() == [True] and to_true_scaled[0] == pytest.approx(expected[1], rel=1e-12)


# ---------------------------------------------------------- (d) network structure: FID InceptionV3


def _basic(name: str, cin: int, cout: int, kh: int, kw: int | None = None) -> dict[str, tuple[int, ...]]:
    """A BasicConv2d: bias-free conv + BatchNorm (4 tensors + the batch counter)."""
    kw = kh if kw is None else kw
    shapes: dict[str, tuple[int, ...]] = {f"{name}.conv.weight": (cout, cin, kh, kw)}
    for suffix in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{name}.bn.{suffix}"] = (cout,)
    shapes[f"{name}.bn.num_batches_tracked"] = ()
    return shapes


def _block_a(name: str, cin: int, pool: int) -> dict[str, tuple[int, ...]]:
    return {**_basic(f"{name}.branch1x1", cin, 64, 1),
            **_basic(f"{name}.branch5x5_1", cin, 48, 1), **_basic(f"{name}.branch5x5_2", 48, 64, 5),
            **_basic(f"{name}.branch3x3dbl_1", cin, 64, 1), **_basic(f"{name}.branch3x3dbl_2", 64, 96, 3),
            **_basic(f"{name}.branch3x3dbl_3", 96, 96, 3), **_basic(f"{name}.branch_pool", cin, pool, 1)}


def _block_c(name: str, c7: int) -> dict[str, tuple[int, ...]]:
    return {**_basic(f"{name}.branch1x1", 768, 192, 1),
            **_basic(f"{name}.branch7x7_1", 768, c7, 1), **_basic(f"{name}.branch7x7_2", c7, c7, 1, 7),
            **_basic(f"{name}.branch7x7_3", c7, 192, 7, 1),
            **_basic(f"{name}.branch7x7dbl_1", 768, c7, 1), **_basic(f"{name}.branch7x7dbl_2", c7, c7, 7, 1),
            **_basic(f"{name}.branch7x7dbl_3", c7, c7, 1, 7),
            **_basic(f"{name}.branch7x7dbl_4", c7, c7, 7, 1),
            **_basic(f"{name}.branch7x7dbl_5", c7, 192, 1, 7), **_basic(f"{name}.branch_pool", 768, 192, 1)}


def _block_e(name: str, cin: int) -> dict[str, tuple[int, ...]]:
    return {**_basic(f"{name}.branch1x1", cin, 320, 1),
            **_basic(f"{name}.branch3x3_1", cin, 384, 1), **_basic(f"{name}.branch3x3_2a", 384, 384, 1, 3),
            **_basic(f"{name}.branch3x3_2b", 384, 384, 3, 1),
            **_basic(f"{name}.branch3x3dbl_1", cin, 448, 1), **_basic(f"{name}.branch3x3dbl_2", 448, 384, 3),
            **_basic(f"{name}.branch3x3dbl_3a", 384, 384, 1, 3),
            **_basic(f"{name}.branch3x3dbl_3b", 384, 384, 3, 1), **_basic(f"{name}.branch_pool", cin, 192, 1)}


def inception_v3_state_shapes(num_classes: int = 1008, aux: bool = False) -> dict[str, tuple[int, ...]]:
    """Inception-v3 (Szegedy et al. 2016) in torchvision's module names, written from the architecture:
    stem 3→32→32→64 (3×3), 64→80 (1×1), 80→192 (3×3); Mixed_5b/c/d (A, pool 32/64/64, out 256/288/
    288); Mixed_6a (B, out 768); Mixed_6b–e (C, 7×7 width 128/160/160/192); Mixed_7a (D, out 1280);
    Mixed_7b/c (E, out 2048); fc. ``aux`` adds the auxiliary classifier on the 768×17×17 map."""
    shapes = {**_basic("Conv2d_1a_3x3", 3, 32, 3), **_basic("Conv2d_2a_3x3", 32, 32, 3),
              **_basic("Conv2d_2b_3x3", 32, 64, 3), **_basic("Conv2d_3b_1x1", 64, 80, 1),
              **_basic("Conv2d_4a_3x3", 80, 192, 3),
              **_block_a("Mixed_5b", 192, 32), **_block_a("Mixed_5c", 256, 64),
              **_block_a("Mixed_5d", 288, 64),
              **_basic("Mixed_6a.branch3x3", 288, 384, 3), **_basic("Mixed_6a.branch3x3dbl_1", 288, 64, 1),
              **_basic("Mixed_6a.branch3x3dbl_2", 64, 96, 3), **_basic("Mixed_6a.branch3x3dbl_3", 96, 96, 3),
              **_block_c("Mixed_6b", 128), **_block_c("Mixed_6c", 160), **_block_c("Mixed_6d", 160),
              **_block_c("Mixed_6e", 192)}
    if aux:
        shapes |= {**_basic("AuxLogits.conv0", 768, 128, 1), **_basic("AuxLogits.conv1", 128, 768, 5),
                   "AuxLogits.fc.weight": (num_classes, 768), "AuxLogits.fc.bias": (num_classes,)}
    shapes |= {**_basic("Mixed_7a.branch3x3_1", 768, 192, 1), **_basic("Mixed_7a.branch3x3_2", 192, 320, 3),
               **_basic("Mixed_7a.branch7x7x3_1", 768, 192, 1),
               **_basic("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
               **_basic("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1),
               **_basic("Mixed_7a.branch7x7x3_4", 192, 192, 3),
               **_block_e("Mixed_7b", 1280), **_block_e("Mixed_7c", 2048),
               "fc.weight": (num_classes, 2048), "fc.bias": (num_classes,)}
    return shapes


def _learned(shapes: dict[str, tuple[int, ...]]) -> int:
    """Parameters only: BN running statistics and batch counters are buffers."""
    return sum(math.prod(s) for k, s in shapes.items() if not k.endswith(("running_mean", "running_var",
                                                                          "num_batches_tracked")))


def test_inception_derivation_is_anchored_on_torchvisions_published_count() -> None:
    """torchvision documents 27,161,264 parameters for ``inception_v3`` (aux head, 1000 classes)."""
    assert _learned(inception_v3_state_shapes(1000, aux=True)) == 27_161_264
    # pytorch-fid's network: no aux head, 1008 classes (the TF 2015-12-05 graph's label set)
    fid = _learned(inception_v3_state_shapes())
    assert fid == 27_161_264 - (128 * 768 + 2 * 128) - (768 * 128 * 25 + 2 * 768) - 769_000 + 8 * 2049
    assert fid == 23_850_960


@pytest.mark.slow
def test_fid_inception_state_dict_matches_the_derived_layout() -> None:
    """Every name and shape of :class:`FIDInceptionV3` equals the derivation (so the official file,
    a state dict of pytorch-fid's network, loads strictly); BN eps 1e-3; convs without bias."""
    from mfsbench.evalnets.inception import FIDInceptionV3

    with torch.device("meta"):
        model = FIDInceptionV3()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = inception_v3_state_shapes()
    assert sorted(set(got) ^ set(expected)) == []
    assert {k: s for k, s in got.items() if s != expected[k]} == {}
    assert sum(p.numel() for p in model.parameters()) == 23_850_960
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 94 and all(m.eps == pytest.approx(1e-3) for m in norms)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.slow
def test_fid_inception_pool_branches_and_input_handling() -> None:
    """The FID-specific semantics, checked with hooks on a randomly initialised network (weights do
    not matter for these): the input is resized to 299 bilinearly (align_corners=False) and mapped
    to [−1, 1]; the pool branch of Mixed_5b–5d, 6b–6e and 7b averages 3×3 without counting the zero
    padding (TensorFlow's average pool); Mixed_7c's pool branch max-pools; pool3 is the spatial mean
    of Mixed_7c's output.

    To keep it fast, hooks swap in small maps after recording what they replace: the stem gets a
    75×75 input and Mixed_5b a 192×13×13 map, so the blocks run at 13, 6 and 2 pixels (every pool
    window still crosses the zero padding, where the two average pools differ)."""
    from mfsbench.evalnets.inception import FIDInceptionV3

    torch.manual_seed(0)
    model = FIDInceptionV3().eval()
    generator = torch.Generator().manual_seed(2)
    captured: dict[str, torch.Tensor] = {}

    def replace(name: str, replacement: torch.Tensor) -> Callable[..., tuple[torch.Tensor]]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
            captured[name] = args[0]
            return (replacement,)
        return hook

    def keep(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            captured[name] = args[0]
        return hook

    def keep_output(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured["7c_out"] = output

    blocks = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
              "Mixed_7b", "Mixed_7c")
    hooks = [
        model.Conv2d_1a_3x3.register_forward_pre_hook(replace("stem_in", torch.rand(1, 3, 75, 75))),
        model.Mixed_5b.register_forward_pre_hook(
            replace("5b_original", torch.randn(1, 192, 13, 13, generator=generator))),
        model.Mixed_7c.register_forward_hook(keep_output),
    ]
    for name in blocks:
        block = getattr(model, name)
        hooks += [block.register_forward_pre_hook(keep(f"{name}.in")),
                  block.branch_pool.register_forward_pre_hook(keep(f"{name}.pool_in"))]
    image = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pool3 = model(image)
    for h in hooks:
        h.remove()
    resized = F.interpolate(image, size=(299, 299), mode="bilinear", align_corners=False)
    torch.testing.assert_close(captured["stem_in"], 2 * resized - 1)
    assert captured["5b_original"].shape == (1, 192, 7, 7)  # 75 → 37 → 35 → 17 → 15 → 7
    assert captured["Mixed_7c.in"].shape[-2:] == (2, 2)
    for name in blocks:
        x = captured[f"{name}.in"]
        if name == "Mixed_7c":
            reference = F.max_pool2d(x, 3, 1, 1)
        else:  # window sum / number of real pixels in the window
            real = F.avg_pool2d(torch.ones_like(x[:, :1]), 3, 1, 1, count_include_pad=True)
            reference = F.avg_pool2d(x, 3, 1, 1, count_include_pad=True) / real
        torch.testing.assert_close(captured[f"{name}.pool_in"], reference, rtol=1e-5, atol=1e-6, msg=name)
    assert pool3.shape == (1, 2048)
    torch.testing.assert_close(pool3, captured["7c_out"].mean(dim=(2, 3)), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------ Hopenet and SphereFace-20 parameter counts


def _resnet50_trunk() -> int:
    """torchvision ResNet-50 without its fc: conv1 7×7 + BN, bottlenecks [3, 4, 6, 3] (1×1, 3×3, 1×1
    ×4, BN after each; projection shortcut on the first block of each stage)."""
    total = 3 * 64 * 49 + 2 * 64
    cin = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            total += cin * planes + 2 * planes  # 1×1 reduce + BN
            total += planes * planes * 9 + 2 * planes  # 3×3 + BN
            total += planes * 4 * planes + 8 * planes  # 1×1 expand (×4) + BN
            if b == 0:
                total += cin * 4 * planes + 8 * planes
            cin = 4 * planes
    return total


def test_hopenet_and_sphereface_parameter_counts_from_their_layer_tables() -> None:
    """Hopenet: ResNet-50 trunk (anchored on torchvision's published 25,557,032 with its 1000-class
    fc) + 3 × Linear(2048, 66) + the vestigial Linear(2051, 3): the spec's 23.920M. SphereFace-20:
    stride-2 conv (+bias) + PReLU(C) per stage, residual blocks of two bias-free 3×3 convs with a
    PReLU(C) each, blocks [1, 2, 4, 1], fc 512·7·6 → 512: the spec's 22.667M in 46 tensors."""
    from mfsbench.evalnets.cosface import SphereFace20

    trunk = _resnet50_trunk()
    assert trunk + 2048 * 1000 + 1000 == 25_557_032
    hopenet = trunk + 3 * (2048 * 66 + 66) + (2051 * 3 + 3)
    assert round(hopenet / 1e6, 2) == 23.92
    with torch.device("meta"):
        assert sum(p.numel() for p in Hopenet().parameters()) == hopenet
        sphere = SphereFace20()
    cin, total, tensors = 3, 0, 0
    for cout, blocks in ((64, 1), (128, 2), (256, 4), (512, 1)):
        total += cin * cout * 9 + cout + cout + blocks * 2 * (cout * cout * 9 + cout)
        tensors += 3 + 4 * blocks
        cin = cout
    total += 512 * 7 * 6 * 512 + 512
    tensors += 2
    assert round(total / 1e6, 3) == 22.667 and tensors == 46
    assert sum(p.numel() for p in sphere.parameters()) == total
    assert len(sphere.state_dict()) == 46
