"""Photos as a person sees them and as the user had them: EXIF orientation, alpha, 16 bits, and
small faces in large photos.

The EXIF blocks are written by hand here (a fixed TIFF structure with one IFD entry), and OpenCV's
own ``IMREAD_COLOR``, which applies the orientation, is the reference for the reader.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from mfsbench.faces.detectors import get_detector, read_image, video_detector_options
from mfsbench.swap.video import write_image
from tests.face_assets import FacePhoto, face_photos_fixture  # noqa: F401  (the fixture)

cv2 = pytest.importorskip("cv2", reason="image tests need opencv-python-headless<5")
pytest.importorskip("dlib", reason="the offline detector needs pip install 'mfsbench[faces]'")


def _tiff_orientation_block(orientation: int, big_endian: bool = True) -> bytes:
    """A minimal EXIF TIFF block: header, one IFD with the Orientation (0x0112, SHORT) entry."""
    order = ">" if big_endian else "<"
    header = (b"MM" if big_endian else b"II") + struct.pack(order + "HI", 42, 8)
    entry = struct.pack(order + "HHI", 0x0112, 3, 1) + struct.pack(order + "HH", orientation, 0)
    return header + struct.pack(order + "H", 1) + entry + struct.pack(order + "I", 0)


def jpeg_with_orientation(pixels: np.ndarray, orientation: int, big_endian: bool = True) -> bytes:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    payload = b"Exif\x00\x00" + _tiff_orientation_block(orientation, big_endian)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = encoded.tobytes()
    return data[:2] + app1 + data[2:]  # right after SOI


def png_with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    data = encoded.tobytes()
    body = _tiff_orientation_block(orientation)
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return data[:ihdr_end] + chunk + data[ihdr_end:]


@pytest.fixture(scope="module")
def detector():
    return get_detector()


# ------------------------------------------------------------------------------------ orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_opencv_imread_color_applies_it(tmp_path: Path, orientation: int):
    from mfsbench.faces.detectors import exif_orientation

    rng = np.random.default_rng(orientation)
    pixels = cv2.resize(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8), (80, 48),
                        interpolation=cv2.INTER_NEAREST)  # 48×80, asymmetric, every turn differs
    for name, data in (("jpg", jpeg_with_orientation(pixels, orientation, big_endian=orientation % 2 == 0)),
                       ("png", png_with_orientation(pixels, orientation))):
        path = tmp_path / f"o{orientation}.{name}"
        path.write_bytes(data)
        assert exif_orientation(data) == orientation
        reference = cv2.imread(str(path), cv2.IMREAD_COLOR)  # OpenCV applies EXIF orientation here
        if orientation in (5, 6, 7, 8):
            assert reference.shape[:2] == (80, 48)  # the reference really turned it
        np.testing.assert_array_equal(read_image(path), reference, err_msg=f"{name}, {orientation}")


@pytest.mark.parametrize("suffix", [".webp", ".jpg"])
def test_orientation_written_by_pillow_is_applied_too(tmp_path: Path, suffix: str):
    """An independent EXIF writer (Pillow, which fvcore brings), and WebP's EXIF chunk."""
    image_module = pytest.importorskip("PIL.Image")
    pixels = cv2.resize(np.random.default_rng(1).integers(0, 256, (6, 10, 3), dtype=np.uint8), (80, 48),
                        interpolation=cv2.INTER_NEAREST)
    for orientation in range(1, 9):
        exif = image_module.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}{suffix}"
        image_module.fromarray(pixels[:, :, ::-1]).save(path, exif=exif.tobytes(), lossless=True, quality=95)
        np.testing.assert_array_equal(read_image(path), cv2.imread(str(path), cv2.IMREAD_COLOR),
                                      err_msg=f"{suffix}, {orientation}")


def test_portrait_phone_jpeg_finds_the_face_and_is_written_upright(tmp_path: Path, detector,
                                                                   face_photos: dict[str, FacePhoto]):
    upright = read_image(face_photos["biden"].path)
    # a phone held upright stores the sensor's landscape pixels and Orientation=6 (turn 90° clockwise)
    stored = np.ascontiguousarray(np.rot90(upright, 1))
    phone = tmp_path / "phone.jpg"
    phone.write_bytes(jpeg_with_orientation(stored, 6))
    assert detector.detect(stored) == []  # sideways, dlib's frontal detector finds nothing

    image = read_image(phone)
    assert image.shape == upright.shape
    assert np.abs(image.astype(int) - upright.astype(int)).mean() < 3  # JPEG-close to the upright photo
    (face,) = detector.detect(image)
    assert face.landmarks5[0, 1] < face.landmarks5[3, 1]  # eyes above the mouth
    out = tmp_path / "out.png"
    write_image(out, image)
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)  # no EXIF in the output: pixels must be upright
    assert written.shape == upright.shape
    np.testing.assert_array_equal(written, image)


# ------------------------------------------------------------------------------ alpha and 16 bits


@pytest.fixture(scope="module")
def pipeline(face_photos: dict[str, FacePhoto], detector):
    from mfsbench.registry import create_model, get_spec
    from mfsbench.swap.pipeline import SwapPipeline

    spec = get_spec("test_mobilefaceswap")
    swap = SwapPipeline(spec, create_model(spec.name), detector, 64)
    swap.inject(read_image(face_photos["obama"].path))
    return swap


def test_rgba_png_keeps_its_alpha_and_swaps_the_colour(tmp_path: Path, pipeline,
                                                        face_photos: dict[str, FacePhoto]):
    bgr = read_image(face_photos["biden"].path)
    height, width = bgr.shape[:2]
    alpha = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    alpha[: height // 8] = 0  # a fully transparent band too
    target = tmp_path / "rgba.png"
    assert cv2.imwrite(str(target), np.dstack([bgr, alpha]))

    swapped = pipeline.swap_frame(read_image(target))
    out = tmp_path / "out.png"
    write_image(out, swapped)
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.shape == (height, width, 4)
    np.testing.assert_array_equal(written[:, :, 3], alpha)
    np.testing.assert_array_equal(written[:, :, :3], np.asarray(swapped))
    changed = np.any(written[:, :, :3] != bgr, axis=2)
    assert changed.sum() > 1000  # the face was swapped on the colour channels


def test_16_bit_png_is_written_at_16_bits_exact_outside_the_swap(tmp_path: Path, pipeline, capsys,
                                                                 face_photos: dict[str, FacePhoto]):
    bgr = read_image(face_photos["biden"].path)
    rng = np.random.default_rng(0)
    deep = bgr.astype(np.uint16) * 257 + rng.integers(0, 200, bgr.shape).astype(np.uint16)  # low byte set
    target = tmp_path / "deep.png"
    assert cv2.imwrite(str(target), deep)

    swapped = pipeline.swap_frame(read_image(target))
    out = tmp_path / "out.png"
    write_image(out, swapped)
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == deep.shape
    changed = np.any(np.asarray(swapped) != (deep >> 8).astype(np.uint8), axis=2)
    assert changed.sum() > 1000
    np.testing.assert_array_equal(written[~changed], deep[~changed])  # bit-exact where not swapped
    np.testing.assert_array_equal(written[changed], np.asarray(swapped)[changed].astype(np.uint16) * 257)
    assert capsys.readouterr().err == ""

    jpeg = tmp_path / "out.jpg"  # a format without 16 bits: written at 8, and said so in one line
    write_image(jpeg, swapped)
    (line,) = capsys.readouterr().err.splitlines()
    assert "16-bit" in line and "8 bits" in line
    assert cv2.imread(str(jpeg), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def test_alpha_dropped_by_jpeg_output_is_a_warning(tmp_path: Path, capsys, face_photos):
    bgr = read_image(face_photos["biden"].path)
    target = tmp_path / "rgba.png"
    assert cv2.imwrite(str(target), np.dstack([bgr, np.full(bgr.shape[:2], 128, np.uint8)]))
    write_image(tmp_path / "out.jpg", read_image(target))
    (line,) = capsys.readouterr().err.splitlines()
    assert "alpha" in line and ".png" in line


# ------------------------------------------------------------------------ small faces, large photo


def _face_tile(photo: FacePhoto, detector, face_width: int) -> np.ndarray:
    """The photo cropped to twice its face's width around it, resized so the face is ``face_width``."""
    image = read_image(photo.path)
    (face,) = detector.detect(image)
    x1, y1, x2, y2 = face.box
    half = x2 - x1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    crop = image[int(max(0, cy - half)):int(cy + half), int(max(0, cx - half)):int(cx + half)]
    factor = face_width / (x2 - x1)
    return cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def test_small_faces_in_a_large_photo_are_all_found_by_default(detector, face_photos):
    """18 real faces about 120 px wide pasted into a 5760×2560 canvas, as in a large group photo."""
    names = ["obama", "obama2", "obama3", "biden", "astronaut"]
    tiles = [_face_tile(face_photos[n], detector, 120) for n in names]
    canvas = np.full((2560, 5760, 3), 90, np.uint8)
    centres = []
    for row in range(3):
        for col in range(6):
            tile = tiles[(row * 6 + col) % len(tiles)]
            y, x = 200 + row * 800, 150 + col * 950
            canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
            centres.append((x + tile.shape[1] / 2, y + tile.shape[0] / 2))

    faces = detector.detect(canvas)
    assert len(faces) == 18
    found = np.array([f.landmarks5.mean(0) for f in faces])
    for centre in centres:  # one face per pasted photo, landmarks in full-image pixels
        distance = np.linalg.norm(found - np.array(centre), axis=1)
        assert np.sum(distance < 60) == 1, centre

    legacy = get_detector(max_side=640)  # the fixed 640-px copy used before: faces 13 px there
    assert legacy.detect(canvas) == []
    assert detector.detection_scale(canvas.shape) == pytest.approx(40 / 80)
    assert detector.detection_scale((480, 640)) == 1.0  # a 640×480 frame costs what it did


def test_detector_options_are_checked():
    from mfsbench.errors import BadInputError

    capped = get_detector(max_side="1280", min_face="32")  # as text, the way a CLI may pass them
    assert capped.detection_scale((2560, 5760)) == pytest.approx(1280 / 5760)
    with pytest.raises(BadInputError, match="min_face"):
        get_detector(min_face="small")
    with pytest.raises(BadInputError, match="max_side"):
        get_detector(max_side=8)
    with pytest.raises(BadInputError, match="base_side"):
        get_detector(base_side=-1)


def test_video_frames_are_detected_on_a_400_px_copy(face_photos: dict[str, FacePhoto]):
    """A video's detector (what `swap` builds for a video target) works on a 400-px copy of a 640×480
    frame, and still finds a face of a ~60-px box there; 1080p frames are detected as photos are."""
    import cv2

    video, photo = get_detector(**video_detector_options("dlib")), get_detector()
    assert video.detection_scale((480, 640)) == pytest.approx(400 / 640)
    assert photo.detection_scale((480, 640)) == 1.0
    assert video.detection_scale((1080, 1920)) == photo.detection_scale((1080, 1920)) == pytest.approx(0.5)
    assert video_detector_options("scrfd") == {}  # its input size is fixed by its model

    image = read_image(face_photos["biden"].path)
    scale = min(640 / image.shape[1], 480 / image.shape[0]) * 0.9
    matrix = np.array([[scale, 0, (640 - scale * image.shape[1]) / 2],
                       [0, scale, (480 - scale * image.shape[0]) / 2]])
    frame = cv2.warpAffine(image, matrix, (640, 480), borderMode=cv2.BORDER_REPLICATE)
    faces, reference = video.detect(frame), photo.detect(frame)
    assert len(faces) == len(reference) == 1
    assert faces[0].box[2] - faces[0].box[0] < 80  # a small face, under the default min_face
    assert np.abs(faces[0].landmarks5 - reference[0].landmarks5).max() < 6  # same face, same landmarks


@pytest.mark.cli
def test_swap_command_keeps_orientation_alpha_and_16_bits(run_cli, tmp_path: Path, face_photos):
    """`mfsbench swap` end to end: a sideways phone JPEG as source, a sideways 16-bit RGBA PNG as target."""
    source_upright = read_image(face_photos["obama"].path)
    source = tmp_path / "source.jpg"
    source.write_bytes(jpeg_with_orientation(np.ascontiguousarray(np.rot90(source_upright, 1)), 6))
    bgr = read_image(face_photos["biden"].path)
    alpha = np.tile(np.linspace(0, 65535, bgr.shape[1]).astype(np.uint16), (bgr.shape[0], 1))
    upright = np.dstack([bgr.astype(np.uint16) * 257 + 7, alpha])
    target = tmp_path / "target.png"
    target.write_bytes(png_with_orientation(np.ascontiguousarray(np.rot90(upright, -1)), 8))
    out = tmp_path / "out.png"
    result = run_cli("swap", "--model", "test_mobilefaceswap", "--source", str(source), "--target",
                     str(target), "--out", str(out), "--allow-random-weights", "--size", "224",
                     "--records", str(tmp_path / "r.jsonl"))
    assert result.code == 0, result.err
    assert "1 swapped" in result.out
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == upright.shape  # upright, 16 bits, alpha
    np.testing.assert_array_equal(written[:, :, 3], alpha)
    changed = np.any(written[:, :, :3] != upright[:, :, :3], axis=2)
    assert 0 < changed.mean() < 0.5  # the face swapped, the rest bit-exact (+7 low bits kept)


def test_landmarks_in_a_window_equal_the_whole_frames(face_photos: dict[str, FacePhoto]):
    """The tracker's landmarks are predicted on a window around the box (not a whole-frame RGB copy):
    the same points, for a face in the middle, at the frame's edge and for a box partly outside."""
    from mfsbench.faces.detectors import check_image, landmarks5_from_68

    detector = get_detector()
    image = read_image(face_photos["obama"].path)
    (face,) = detector.detect(image)[:1]
    frame = np.zeros((image.shape[0] + 200, image.shape[1] + 200, 3), np.uint8)
    frame[100:100 + image.shape[0], 100:100 + image.shape[1]] = image

    def whole_frame(box: np.ndarray) -> np.ndarray:
        rgb = np.ascontiguousarray(check_image(frame)[:, :, ::-1])
        shape = detector._predictor(rgb, detector._dlib.rectangle(*(round(float(v)) for v in box)))
        return landmarks5_from_68(np.array([[p.x, p.y] for p in shape.parts()], np.float64))

    width = face.box[2] - face.box[0]
    corner = -face.box[[0, 1, 0, 1]] - width / 3  # the box a third outside the top-left corner
    for shift in (np.array([100, 100, 100, 100]), np.zeros(4), corner):
        box = face.box + shift
        assert np.array_equal(detector.landmarks_in_box(frame, box), whole_frame(box)), shift
