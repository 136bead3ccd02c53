"""``mfsbench swap --face one|many|reference`` and ``--face-index`` on stills, the identity threshold
measured on real photos, and the record of what was selected (issue 16 item 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfsbench.errors import BadInputError
from mfsbench.faces.types import Face
from mfsbench.records import read_records
from mfsbench.swap.selection import (
    DEFAULT_REFERENCE_THRESHOLD,
    Selection,
    indexed,
    left_to_right,
    most_prominent,
    visible_area,
)
from tests.face_assets import face_photos_fixture  # noqa: F401 - registers the fixture
from tests.multi_face_video import make_multi_face_video, one_torch_thread  # noqa: F401 - autouse

cv2 = pytest.importorskip("cv2")


def _face(x1: float, y1: float, x2: float, y2: float, score: float = 1.0) -> Face:
    return Face(np.array([x1, y1, x2, y2]), score, np.zeros((5, 2)))


def test_prominence_is_the_visible_box_area_then_the_score() -> None:
    shape = (480, 640, 3)
    cut = _face(-150, 100, 150, 400)  # 300×300, only half inside the frame: 150×300 visible
    whole = _face(300, 100, 520, 320)  # 220×220 = 48 400 visible > 45 000
    assert visible_area(cut, shape) == 150 * 300
    assert most_prominent([cut, whole], shape) == 1
    twin = _face(300, 100, 520, 320, score=2.0)
    assert most_prominent([whole, twin], shape) == 1  # same area: the higher score
    with pytest.raises(ValueError, match="at least one face"):
        most_prominent([], shape)


def test_face_index_counts_left_to_right_and_says_how_many_were_found() -> None:
    faces = [_face(400, 0, 450, 50), _face(10, 0, 60, 50), _face(200, 0, 250, 50)]
    assert left_to_right(faces) == [1, 2, 0]
    assert [indexed(faces, i, "the target") for i in range(3)] == [1, 2, 0]
    with pytest.raises(BadInputError, match=r"--face-index 3 is out of range: 3 face\(s\) found in the "
                                            r"target \(indices 0–2, counted left to right\)"):
        indexed(faces, 3, "the target")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "reference"}, "--face reference needs --reference-face IMAGE"),
        ({"mode": "many", "reference": Path("r.jpg")}, "--reference-face is used only with --face reference"),
        ({"mode": "many", "face_index": 0}, "cannot be combined with --face many"),
        ({"face_index": -1}, "counts faces from 0"),
        ({"mode": "reference", "reference": Path("r.jpg"), "threshold": 0.0}, "in (0, 2)"),
        ({"mode": "all"}, "is not a face mode"),
    ],
)
def test_contradictory_selections_are_refused(kwargs: dict, needle: str) -> None:
    with pytest.raises(BadInputError) as caught:
        Selection(**kwargs)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_default_reference_threshold_separates_same_and_other_people(face_photos) -> None:
    """The threshold's measurement, redone: Obama's photos within it of each other, others beyond it."""
    from mfsbench.faces.detectors import get_detector
    from mfsbench.swap.selection import ReferenceIdentity

    detector = get_detector("dlib")
    obama = ReferenceIdentity.from_photo(face_photos["obama"].path, detector)
    for name, same in (("obama2", True), ("obama3", True), ("biden", False), ("astronaut", False)):
        if name not in face_photos:
            continue  # the astronaut comes with scikit-image only
        other = ReferenceIdentity.from_photo(face_photos[name].path, detector)
        distance = float(np.linalg.norm(other.descriptor - obama.descriptor))
        assert (distance < DEFAULT_REFERENCE_THRESHOLD) == same, (name, distance)


@pytest.fixture(scope="module")
def group_still(tmp_path_factory: pytest.TempPathFactory, face_photos) -> tuple[Path, dict]:
    """Frame 0 of the four-person clip as a PNG, with each person's patch square."""
    from mfsbench.swap.video import iter_frames

    folder = tmp_path_factory.mktemp("group")
    truth = make_multi_face_video(face_photos, folder / "group.mp4", frames=2)
    still = folder / "group.png"
    cv2.imwrite(str(still), next(iter(iter_frames(folder / "group.mp4"))))
    return still, truth[0]


def _swapped_people(target: Path, out: Path, places: dict) -> set[str]:
    changed = np.abs(cv2.imread(str(target)).astype(int) - cv2.imread(str(out)).astype(int)).sum(axis=2) > 0
    assert changed.any()
    people = {name for name, (x0, y0, side) in places.items() if changed[y0:y0 + side, x0:x0 + side].any()}
    inside = sum(int(changed[y0:y0 + s, x0:x0 + s].sum()) for x0, y0, s in places.values())
    assert inside == int(changed.sum())  # nothing changed off the people's patches
    return people


def _errors(err: str) -> list[str]:
    """stderr without the random-weights notice, which a run with untrained weights always prints."""
    return [line for line in err.strip().splitlines() if not line.startswith("WARNING: random weights")]


def _swap(run_cli, face_photos, target: Path, tmp_path: Path, *extra: str):
    out = tmp_path / "out.png"
    records = tmp_path / "r.jsonl"
    result = run_cli("swap", "--model", "test_mobilefaceswap", "--source", str(face_photos["t1"].path),
                     "--target", str(target), "--out", str(out), "--allow-random-weights",
                     "--records", str(records), *extra)
    return result, out, records


@pytest.mark.cli
@pytest.mark.slow
def test_face_index_and_many_and_reference_on_a_group_still(run_cli, face_photos, group_still,
                                                            tmp_path: Path) -> None:
    still, places = group_still
    # left to right: Obama (centre x 100), Biden (150), Tom Hanks (270), the astronaut (470)
    result, out, records = _swap(run_cli, face_photos, still, tmp_path, "--face-index", "2")
    assert result.code == 0, result.err
    assert _swapped_people(still, out, places) == {"tom_hanks"}
    assert read_records(records)[-1].info["face_index"] == 2

    result, out, records = _swap(run_cli, face_photos, still, tmp_path)  # default: the most prominent
    assert result.code == 0 and _swapped_people(still, out, places) == {"biden"}

    result, out, records = _swap(run_cli, face_photos, still, tmp_path, "--face", "many")
    assert result.code == 0 and _swapped_people(still, out, places) == set(places)
    record = read_records(records)[-1]
    assert record.info["face_mode"] == "many" and record.metrics["faces_swapped"] == 4
    assert record.metrics["tracks_seen"] == 4 and record.metrics["detections"] == 1

    reference = str(face_photos["obama2"].path)
    result, out, records = _swap(run_cli, face_photos, still, tmp_path, "--face", "reference",
                                 "--reference-face", reference)
    assert result.code == 0, result.err
    assert _swapped_people(still, out, places) == {"obama"}
    record = read_records(records)[-1]
    assert record.info["reference_face"] == reference
    assert record.info["reference_threshold"] == DEFAULT_REFERENCE_THRESHOLD


@pytest.mark.cli
def test_face_index_out_of_range_is_one_line_with_the_count(run_cli, face_photos, tmp_path: Path) -> None:
    result, out, _ = _swap(run_cli, face_photos, face_photos["biden"].path, tmp_path, "--face-index", "3")
    assert result.code == 2 and not out.exists()
    assert "--face-index 3 is out of range: 1 face(s) found in the target (index 0)" in result.err
    assert len(_errors(result.err)) == 1


@pytest.mark.cli
def test_reference_errors_are_one_line(run_cli, face_photos, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 90, np.uint8))
    cases = [
        (("--face", "reference"), "needs --reference-face IMAGE"),
        (("--face", "reference", "--reference-face", str(blank)), "no face found in --reference-face"),
        (("--face", "reference", "--reference-face", str(tmp_path / "none.jpg")), "not found"),
        (("--face", "many", "--reference-face", str(blank)), "only with --face reference"),
        (("--face", "reference", "--reference-face", str(face_photos["biden"].path)),
         "none of the 1 face(s) in the target"),
    ]
    target = face_photos["obama3"].path
    for extra, needle in cases:
        result, out, _ = _swap(run_cli, face_photos, target, tmp_path, *extra)
        assert result.code == 2 and needle in result.err, (extra, result.err)
        assert len(_errors(result.err)) == 1 and not out.exists()
    # the reference photo is an input like the others: never overwritten by --out
    result = run_cli("swap", "--model", "test_mobilefaceswap", "--source", str(face_photos["t1"].path),
                     "--target", str(target), "--out", str(blank), "--allow-random-weights",
                     "--face", "reference", "--reference-face", str(blank))
    assert result.code == 2 and "--reference-face" in result.err


@pytest.mark.cli
@pytest.mark.slow
def test_video_record_states_mode_detections_and_tracks(run_cli, face_photos, tmp_path: Path) -> None:
    clip = tmp_path / "four.mp4"
    make_multi_face_video(face_photos, clip, frames=12)
    out, records = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    result = run_cli("swap", "--model", "test_mobilefaceswap", "--source", str(face_photos["t1"].path),
                     "--target", str(clip), "--out", str(out), "--allow-random-weights", "--face", "many",
                     "--records", str(records))
    assert result.code == 0, result.err
    assert "--face many: 48 swapped; detector run on 2 of 12 frame(s) (--detect-every 10)" in result.out
    record = read_records(records)[-1]
    assert record.info["face_mode"] == "many" and record.info["detect_every"] == 10
    assert record.metrics["detections"] == 2 and record.metrics["tracks_seen"] == 4
    assert record.metrics["faces_swapped"] == 48 and record.metrics["frames_swapped"] == 12
