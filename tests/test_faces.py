"""Face analysis on real photos: detection, the three alignments, paste-back, SCRFD decoding.

The photos come from registry packages (``tests/face_assets.py``); tests that need them skip with
the reason when the index cannot be reached. Expected values are hand-derived (SCRFD, Hopenet crop)
or come from an independent implementation (skimage's Umeyama), never from the code under test.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from mfsbench.errors import BadInputError, MissingDependencyError
from mfsbench.faces import (
    ARCFACE_TEMPLATE_112,
    SIMSWAP_TEMPLATES_112,
    COSFACE_TEMPLATE_96x112,
    Face,
    FaceDetector,
    align,
    blend_mask,
    check_image,
    estimate_affine_lstsq,
    estimate_alignment,
    estimate_similarity,
    get_detector,
    hopenet_crop,
    inverse_matrix,
    paste_back,
    read_image,
    transform_points,
    warp_back,
)
from mfsbench.faces.detectors import DLIB_MIN_SCORE, anchor_centers, dlib_model_dir, nms, scrfd_decode
from tests.face_assets import FacePhoto, face_photos_fixture, make_video  # noqa: F401  (the fixture)

cv2 = pytest.importorskip("cv2", reason="face tests need opencv-python-headless<5")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


needs_dlib = pytest.mark.skipif(
    not (_has("dlib") and _has("face_recognition_models")),
    reason="the offline detector needs pip install 'mfsbench[faces]' (dlib-bin, face-recognition-models)",
)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    if not (_has("dlib") and _has("face_recognition_models")):
        pytest.skip("the offline detector needs pip install 'mfsbench[faces]'")
    return get_detector()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# ------------------------------------------------------------------------------------- detection


@needs_dlib
def test_offline_detector_finds_every_face_on_real_photos(
    detector: FaceDetector, face_photos: dict[str, FacePhoto]
) -> None:
    for name, photo in face_photos.items():
        image = read_image(photo.path)
        faces = detector.detect(image)
        assert len(faces) == photo.faces, f"{name}: found {len(faces)} faces, expected {photo.faces}"
        for face in faces:
            eye_l, eye_r, nose, mouth_l, mouth_r = face.landmarks5
            # image-left before image-right, eyes above the nose above the mouth
            assert eye_l[0] < eye_r[0] and mouth_l[0] < mouth_r[0], name
            assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1]), name
            assert face.score >= DLIB_MIN_SCORE
            x1, _, x2, _ = face.box
            assert np.all(face.landmarks5[:, 0] > x1 - face.width * 0.2)
            assert np.all(face.landmarks5[:, 0] < x2 + face.width * 0.2), name


@needs_dlib
def test_group_photo_has_six_separate_faces(
    detector: FaceDetector, face_photos: dict[str, FacePhoto]
) -> None:
    faces = detector.detect(read_image(face_photos["t1"].path))
    assert len(faces) == 6
    centres = np.array([f.landmarks5.mean(0) for f in faces])
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(6) * 1e9
    assert distances.min() > 100  # six different people, not one face found twice
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


@needs_dlib
def test_landmarks_of_an_arcface_aligned_crop_sit_on_the_template(
    detector: FaceDetector, face_photos: dict[str, FacePhoto]
) -> None:
    """insightface's Tom Hanks image *is* an ArcFace-aligned 112 crop: its eyes are at the template."""
    (face,) = detector.detect(read_image(face_photos["tom_hanks"].path))
    error = np.linalg.norm(face.landmarks5 - ARCFACE_TEMPLATE_112, axis=1)
    assert error[:2].max() < 3.0  # eye centres within 3 px at 112
    assert error.max() < 0.3 * face.interocular  # nose/mouth: dlib's points differ from insightface's


def test_no_face_gives_empty_list(detector: FaceDetector, face_photos: dict[str, FacePhoto]) -> None:
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert detector.detect(noise) == []
    table = read_image(face_photos["t1"].path)[560:]  # chips and cards under the six faces
    assert detector.detect(table) == []


def test_bad_input_is_a_bad_input_error(tmp_path: Path) -> None:
    garbage = tmp_path / "photo.jpg"
    garbage.write_bytes(b"not a jpeg at all")
    with pytest.raises(BadInputError, match="cannot decode"):
        read_image(garbage)
    with pytest.raises(BadInputError, match="not found"):
        read_image(tmp_path / "missing.jpg")
    unreadable = cv2.imread(str(garbage))  # what a caller gets from OpenCV: None
    with pytest.raises(BadInputError, match="could not be read"):
        check_image(unreadable)
    with pytest.raises(BadInputError, match="uint8"):
        check_image(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(BadInputError, match="empty"):
        check_image(np.zeros((0, 8, 3), np.uint8))
    with pytest.raises(BadInputError, match="channels"):
        check_image(np.zeros((8, 8, 2), np.uint8))
    assert check_image(np.zeros((8, 8, 4), np.uint8)).shape == (8, 8, 3)  # BGRA is a photo too
    assert check_image(np.zeros((8, 8), np.uint8)).shape == (8, 8, 3)


@needs_dlib
def test_detector_rejects_bad_input(detector: FaceDetector) -> None:
    with pytest.raises(BadInputError):
        detector.detect(None)  # type: ignore[arg-type]


def test_detector_registry_errors_are_one_line() -> None:
    with pytest.raises(BadInputError, match="choose one of dlib, dlib-cnn, scrfd"):
        get_detector("retinaface")
    with pytest.raises(BadInputError, match=r"scrfd_10g_bnkps\.onnx"):
        get_detector("scrfd")
    with pytest.raises(BadInputError, match="not found"):
        get_detector("scrfd", model_path="/nonexistent/scrfd_10g_bnkps.onnx")


def test_missing_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    def find_spec(name: str, *args: object) -> object:
        return None if name == "face_recognition_models" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingDependencyError, match=r"mfsbench\[faces\]"):
        dlib_model_dir()
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"mfsbench\[faces\].*dlib-bin"):
        get_detector("dlib")


def test_face_validates_its_shapes() -> None:
    face = Face(box=[0, 0, 10, 20], score=1, landmarks5=np.zeros((5, 2)))
    assert (face.width, face.height, face.area) == (10.0, 20.0, 200.0)
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        Face(box=[0, 0, 1, 1], score=1.0, landmarks5=np.zeros((68, 2)))


# ------------------------------------------------------------------------------------- alignment


def _random_affine(rng: np.random.Generator, similarity: bool) -> np.ndarray:
    angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.3, 3.0)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if not similarity:
        linear = linear @ np.array([[1.0, rng.uniform(-0.3, 0.3)], [0.0, rng.uniform(0.7, 1.3)]])
    return np.hstack([linear, rng.uniform(-300, 300, (2, 1))])


def test_affine_fit_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        truth = _random_affine(rng, similarity=False)
        src = rng.uniform(0, 500, (5, 2))
        np.testing.assert_allclose(estimate_affine_lstsq(src, transform_points(truth, src)), truth, atol=1e-8)


def test_affine_fit_is_least_squares() -> None:
    """With noise the fit minimises the squared error: nudging any coefficient makes it worse."""
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 200, (5, 2))
    dst = transform_points(_random_affine(rng, False), src) + rng.normal(0, 2, (5, 2))
    fit = estimate_affine_lstsq(src, dst)
    best = np.sum((transform_points(fit, src) - dst) ** 2)
    for index in np.ndindex(2, 3):
        for step in (-1e-3, 1e-3):
            nudged = fit.copy()
            nudged[index] += step
            assert np.sum((transform_points(nudged, src) - dst) ** 2) > best


def test_similarity_fit_matches_skimage_umeyama() -> None:
    transform = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(3)
    for _ in range(10):
        truth = _random_affine(rng, similarity=True)
        src = rng.uniform(0, 500, (5, 2))
        dst = transform_points(truth, src)
        np.testing.assert_allclose(estimate_similarity(src, dst), truth, atol=1e-8)
        noisy = dst + rng.normal(0, 3, dst.shape)
        reference = transform.SimilarityTransform.from_estimate(src, noisy).params[:2]
        np.testing.assert_allclose(estimate_similarity(src, noisy), reference, atol=1e-8)


def test_rank_deficient_fits_follow_the_official_code() -> None:
    line = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0], [5.0, 5.0]])  # through the origin
    matrix = estimate_affine_lstsq(line, line * 2)
    np.testing.assert_array_equal(matrix[:, 2], 0.0)  # rank 2: translation dropped, as MobileFaceSwap
    np.testing.assert_allclose(transform_points(matrix, line), line * 2, atol=1e-9)
    with pytest.raises(BadInputError, match="degenerate"):
        estimate_similarity(np.ones((5, 2)), np.ones((5, 2)))
    with pytest.raises(BadInputError, match="5 landmarks"):
        estimate_alignment(np.zeros((68, 2)), "arcface", 224)
    with pytest.raises(BadInputError, match="unknown alignment"):
        estimate_alignment(ARCFACE_TEMPLATE_112, "ffhq", 224)


@pytest.mark.parametrize(("method", "size", "template"), [
    ("arcface", 224, ARCFACE_TEMPLATE_112 * 2),
    ("simswap", 224, SIMSWAP_TEMPLATES_112[2] * 2),
    ("cosface", 112, COSFACE_TEMPLATE_96x112),
])
def test_landmarks_land_on_the_template(method: str, size: int, template: np.ndarray) -> None:
    """A face placed in a frame by a known similarity, with 0.5 px landmark noise, comes back within 3 px."""
    rng = np.random.default_rng(4)
    for _ in range(10):
        placement = _random_affine(rng, similarity=True)
        landmarks = transform_points(placement, template + rng.normal(0, 0.5, (5, 2)))  # noise in crop px
        frame = np.zeros((600, 800, 3), np.uint8)
        crop, matrix = align(frame, landmarks, method, size)
        assert crop.shape == ((size, size, 3) if method != "cosface" else (112, 96, 3))
        assert np.linalg.norm(transform_points(matrix, landmarks) - template, axis=1).max() < 3.0


def test_simswap_picks_the_pose_template() -> None:
    rng = np.random.default_rng(5)
    for pose, template in enumerate(SIMSWAP_TEMPLATES_112):
        placement = _random_affine(rng, similarity=True)
        landmarks = transform_points(placement, template * 2)
        matrix = estimate_alignment(landmarks, "simswap", 224)
        np.testing.assert_allclose(transform_points(matrix, landmarks), template * 2, atol=1e-6,
                                   err_msg=f"pose {pose}")


@needs_dlib
def test_aligned_crops_of_real_faces_put_the_landmarks_where_the_matrix_says(
    detector: FaceDetector, face_photos: dict[str, FacePhoto]
) -> None:
    """Re-detecting on each 224 crop finds the eyes where the alignment matrix maps them.

    Faces scoring under 0.5 (two turned heads in t1.jpg) are held to the mean only: the detector
    itself is less repeatable on them.
    """
    errors = []
    for photo in face_photos.values():
        image = read_image(photo.path)
        for face in detector.detect(image):
            for method in ("arcface", "simswap"):
                crop, matrix = align(image, face.landmarks5, method, 224)
                (again,) = detector.detect(crop)
                error = np.linalg.norm(again.landmarks5 - transform_points(matrix, face.landmarks5), axis=1)
                errors.append(error)
                if face.score >= 0.5:
                    assert error[:2].max() < 3.0, (photo.path.name, method, error)
    assert np.mean(errors) < 3.0


def test_hopenet_crop_matches_the_hand_computed_box() -> None:
    image = np.arange(400 * 300 * 3, dtype=np.uint32).reshape(300, 400, 3).astype(np.uint8)
    # w = 40, h = 60: x 100-20=80 .. 140+20=160, y 150-45=105 .. 210+15=225
    crop, box = hopenet_crop(image, np.array([100.0, 150.0, 140.0, 210.0]))
    assert box == (80, 105, 160, 225)
    np.testing.assert_array_equal(crop, image[105:225, 80:160])
    # near the corner the widened box is clipped to the image
    _, box = hopenet_crop(image, np.array([10.0, 20.0, 50.0, 60.0]))
    assert box == (0, 0, 70, 70)
    with pytest.raises(BadInputError, match="outside"):
        hopenet_crop(image, np.array([1000.0, 1000.0, 1010.0, 1010.0]))


# ------------------------------------------------------------------------------------- paste-back


def test_inverse_matrix_undoes_the_alignment() -> None:
    matrix = _random_affine(np.random.default_rng(6), similarity=False)
    points = np.random.default_rng(7).uniform(0, 224, (10, 2))
    np.testing.assert_allclose(transform_points(matrix, transform_points(inverse_matrix(matrix), points)),
                               points, atol=1e-9)


def test_blend_mask_postprocessing() -> None:
    """All-ones mask: 1 in the middle, 0 at the crop edge, a ramp between (erosion + blur + fade)."""
    mask = blend_mask(np.ones((224, 224), np.float32))
    assert mask[112, 112] == pytest.approx(1.0)
    assert mask[0, 112] == 0.0 and mask[112, 0] == 0.0
    row = mask[112, :112]
    assert np.all(np.diff(row) >= -1e-6)  # rises monotonically from the edge
    assert np.all(blend_mask(np.zeros((224, 224), np.float32)) == 0.0)
    soft = np.full((224, 224), 0.01, np.float32)  # anything above 0.001 counts as face
    np.testing.assert_allclose(blend_mask(soft), mask)
    original = soft.copy()
    blend_mask(soft)
    np.testing.assert_array_equal(soft, original)  # the caller's mask is not modified


def test_paste_back_with_zero_mask_leaves_the_frame_untouched() -> None:
    rng = np.random.default_rng(8)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    matrix = np.array([[0.8, 0.1, -150.0], [-0.1, 0.8, -100.0]])
    crop = np.full((224, 224, 3), 255, np.uint8)
    out = paste_back(frame, crop, matrix, np.zeros((224, 224), np.float32))
    np.testing.assert_array_equal(out, frame)
    assert out is not frame


@needs_dlib
def test_identity_swap_pastes_back_to_the_same_frame(
    detector: FaceDetector, face_photos: dict[str, FacePhoto], tmp_path: Path
) -> None:
    """Pasting the aligned crop itself back (an identity swap) reproduces the frame: PSNR ≥ 40 dB."""
    video = make_video(face_photos["obama"].path, tmp_path / "obama.mp4", seconds=0.2)
    ok, frame = cv2.VideoCapture(str(video)).read()
    assert ok
    (face,) = detector.detect(frame)
    for method in ("arcface", "simswap"):
        crop, matrix = align(frame, face.landmarks5, method, 224)
        out = paste_back(frame, crop, matrix, np.ones((224, 224), np.float32))
        assert psnr(out, frame) >= 40.0, method
        # and the plain inverse warp covers the face region with the crop's content
        back = warp_back(crop, matrix, frame.shape)
        x1, y1, x2, y2 = face.box.astype(int)
        assert back[y1:y2, x1:x2].mean() > 0
    with pytest.raises(BadInputError, match="differ in size"):
        paste_back(frame, crop, matrix, np.ones((112, 112), np.float32))


# ------------------------------------------------------------------------------------- test video


@needs_dlib
def test_make_video_writes_a_short_clip_with_a_moving_face(
    detector: FaceDetector, face_photos: dict[str, FacePhoto], tmp_path: Path
) -> None:
    path = make_video(face_photos["astronaut"].path, tmp_path / "clip.mp4")
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 50 and frames[0].shape == (480, 640, 3)
    boxes = [detector.detect(frames[i])[0].box for i in (0, 12, 25)]
    assert np.abs(boxes[0] - boxes[1]).max() > 2  # it moves …
    assert np.abs(boxes[0] - boxes[1]).max() < 60  # … slightly


# ------------------------------------------------------------------------------------------ SCRFD

# A 128×96 image letterboxed into a 64×64 input: resized to 64×48, so every coordinate doubles.
# Stride 16 has a 4×4 grid with 2 anchors per cell (32 rows), stride 8 an 8×8 grid (128), stride 32 2×2 (8).
_INPUT = (64, 64)
_SIZES = {8: 128, 16: 32, 32: 8}


def _synthetic_outputs() -> dict[str, np.ndarray]:
    out = {}
    for stride, n in _SIZES.items():
        out[f"score_{stride}"] = np.zeros((n, 1), np.float32)
        out[f"bbox_{stride}"] = np.zeros((n, 4), np.float32)
        out[f"kps_{stride}"] = np.zeros((n, 10), np.float32)
    # face A: stride 16, row 1, column 2, anchor 1 → index (1*4+2)*2+1 = 13, centre (32, 16)
    out["score_16"][13] = 0.9
    out["bbox_16"][13] = [1.0, 0.5, 1.5, 2.0]  # ×16: left 16, top 8, right 24, bottom 32
    out["kps_16"][13] = [-0.5, -0.25, 0.5, -0.25, 0.0, 0.5, -0.25, 1.0, 0.25, 1.0]
    # a weaker duplicate of A at stride 8, row 3, column 4, anchor 0 → index 56, centre (32, 24)
    out["score_8"][56] = 0.7
    out["bbox_8"][56] = [2.0, 2.0, 3.0, 3.0]  # ×8: box (16, 8, 56, 48), the same as A → suppressed
    # face B: stride 8, row 6, column 1, anchor 0 → index 98, centre (8, 48)
    out["score_8"][98] = 0.8
    out["bbox_8"][98] = [0.5, 0.5, 0.5, 0.5]  # box (4, 44, 12, 52)
    # below the threshold: stride 32, index 0
    out["score_32"][0] = 0.3
    out["bbox_32"][0] = [0.5, 0.5, 0.5, 0.5]
    return out


def _check_decoded(faces: list[Face]) -> None:
    assert [round(f.score, 6) for f in faces] == [0.9, 0.8]
    a, b = faces
    # A in the input: (32-16, 16-8, 32+24, 16+32) = (16, 8, 56, 48); in the image ×2
    np.testing.assert_allclose(a.box, [32, 16, 112, 96])
    # A's keypoints in the input: centre (32, 16) + 16·offset = (24,12) (40,12) (32,24) (28,32) (36,32)
    np.testing.assert_allclose(a.landmarks5, np.array([[24, 12], [40, 12], [32, 24], [28, 32], [36, 32]]) * 2)
    np.testing.assert_allclose(b.box, [8, 88, 24, 104])
    np.testing.assert_allclose(b.landmarks5, np.tile([16.0, 96.0], (5, 1)))


def test_scrfd_decode_on_synthetic_outputs() -> None:
    outputs = _synthetic_outputs()
    faces = scrfd_decode([outputs[f"score_{s}"] for s in (8, 16, 32)],
                         [outputs[f"bbox_{s}"][np.newaxis] for s in (8, 16, 32)],  # batched export
                         [outputs[f"kps_{s}"] for s in (8, 16, 32)],
                         _INPUT, score_threshold=0.5, nms_threshold=0.4, scale=0.5)
    _check_decoded(faces)
    with pytest.raises(BadInputError, match="bnkps"):
        scrfd_decode([np.zeros((10, 1))] * 3, [np.zeros((10, 4))] * 3, [np.zeros((10, 10))] * 3, _INPUT)


def test_anchor_centres_and_nms() -> None:
    centres = anchor_centers(2, 3, 16)
    np.testing.assert_array_equal(centres[:6], [[0, 0], [0, 0], [16, 0], [16, 0], [32, 0], [32, 0]])
    np.testing.assert_array_equal(centres[6], [0, 16])
    boxes = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [20, 20, 29, 29]], float)
    # IoU of the first two with insightface's +1: 81 / (100 + 100 - 81) = 0.68
    assert nms(boxes, np.array([0.5, 0.9, 0.1]), 0.4) == [1, 2]
    assert nms(boxes, np.array([0.5, 0.9, 0.1]), 0.7) == [1, 0, 2]


def _synthetic_scrfd_model(path: Path, output_names: list[str]) -> None:
    """A tiny ONNX graph with SCRFD's input and outputs (names, shapes): constants plus 0·mean(input).

    ``output_names`` name the outputs in insightface's order: scores, boxes, keypoints × (8, 16, 32).
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    outputs = _synthetic_outputs()
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    graph_outputs = []
    canonical = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in (8, 16, 32)]
    for name, onnx_name in zip(canonical, output_names, strict=True):
        inits.append(numpy_helper.from_array(outputs[name], f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "nothing"], [onnx_name]))
        graph_outputs.append(helper.make_tensor_value_info(onnx_name, TensorProto.FLOAT, outputs[name].shape))
    graph = helper.make_graph(
        nodes, "scrfd_synthetic",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, *_INPUT[::-1]])],
        graph_outputs, inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.mark.parametrize("named", [True, False], ids=["official-names", "index-order"])
def test_scrfd_detector_on_a_synthetic_onnx_graph(tmp_path: Path, named: bool) -> None:
    pytest.importorskip("onnxruntime")
    order = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in (8, 16, 32)]
    names = order if named else [str(400 + i) for i in range(9)]
    model = tmp_path / "scrfd_synthetic.onnx"
    _synthetic_scrfd_model(model, names)
    scrfd = get_detector("scrfd", model_path=model, score_threshold=0.5)
    assert scrfd.input_size == _INPUT  # type: ignore[attr-defined]
    _check_decoded(scrfd.detect(np.zeros((96, 128, 3), np.uint8)))
