"""Every protocol-card field is honoured: it moves the numbers with the fingerprint, or it is refused.

The audit (C2) found card fields that were printed and fingerprinted but never read, so a card
could say one thing while the numbers came from another. Here each field of
:class:`~mfsbench.quality.protocol.QualityProtocol` falls in exactly one class, and the test fails
for a field in none (a new field must be placed):

* **moves**: changing it changes the fingerprint *and* the Table 2 numbers, measured end to end
  by the runner on a mini FF++ tree with the offline evaluators;
* **single choice**: the runner implements one value; any other is refused when the card loads;
* **evaluator**: must match the evaluator that runs; a mismatch is refused before any work, and
  ``--evaluators offline`` writes its own values (so its fingerprint is not the official one);
* **name**: ``id`` changes neither the fingerprint nor the numbers.

Also here: identity-grouped top-1 and the target-retrieval rate on a tree where one person
appears in two videos (C3), and a failed pose fit that becomes a counted skip (C3).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mfsbench.errors import BadInputError
from mfsbench.quality.protocol import SINGLE_CHOICES, QualityProtocol, load_protocol

FRAMES = 2  # per video: cheap on 2 cores, and the blanked frame below is one of them
VIDEO_FRAMES = 12
BLANK_FRAME = 3  # sample_indices(12, 2) == [3, 9]: a sampled frame of video 000 with no face


def _rewrite(src: Path, dst: Path, change: Any) -> None:
    """Re-encode ``src`` into ``dst`` with ``change(index, frame) -> frame`` applied to each frame."""
    import cv2

    capture = cv2.VideoCapture(str(src))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(change(len(frames), frame))
    capture.release()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 25, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    tmp.replace(dst)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-person mini tree; frame 3 of video 000 shows no face, and a c40 copy of the originals exists."""
    import cv2

    from mfsbench.quality.mini import build_mini_ffpp

    try:
        root = build_mini_ffpp(tmp_path_factory.mktemp("ffpp"), people=4, frames=VIDEO_FRAMES)
    except RuntimeError as exc:  # registry unreachable: no real faces, no test (never fake data)
        pytest.skip(f"face photos unavailable: {exc}")
    videos = root / "original_sequences" / "youtube" / "c23" / "videos"
    _rewrite(videos / "000.mp4", videos / "000.mp4",
             lambda i, f: np.zeros_like(f) if i == BLANK_FRAME else f)
    c40 = root / "original_sequences" / "youtube" / "c40" / "videos"
    for video in sorted(videos.glob("*.mp4")):  # the stronger compression: the same faces, blurred
        _rewrite(video, c40 / video.name, lambda _i, f: cv2.GaussianBlur(f, (5, 5), 1.5))
    return root


def _offline(protocol: QualityProtocol) -> Any:
    from mfsbench.quality.evaluators import build_evaluators

    return build_evaluators("offline", flip_concat=protocol.id_flip_concat,
                            fid_crop_size=protocol.fid_crop_size)


def base_protocol(subset: str = "all") -> QualityProtocol:
    """ffpp_v1 with 2 frames per video and the card written for the offline evaluators (as the CLI does)."""
    from mfsbench.quality.card import card_for

    protocol = load_protocol("ffpp_v1", frames_per_video=FRAMES, subset=subset)
    return card_for(protocol, _offline(protocol))


def measure(root: Path, protocol: QualityProtocol, store_path: Path) -> tuple[str, list[tuple], Any]:
    """(fingerprint, every row's rendered numbers, header) of one run in a fresh store."""
    from mfsbench.quality.ffpp import FFppTree
    from mfsbench.quality.runner import QualityRunner, calibration_rows
    from mfsbench.quality.store import QualityStore
    from mfsbench.report.table2 import collect

    tree = FFppTree(root, root / "splits", protocol.compression)
    rows = calibration_rows()
    evaluators = _offline(protocol)
    with QualityStore(store_path) as store:
        runner = QualityRunner(protocol=protocol, tree=tree, store=store, rows=rows, evaluators=evaluators,
                               subset=protocol.subset, progress=False)
        runner.run()
        header, table = collect(store, runner.fp, runner.evalset)
    numbers = [(r.key, r.frames_ok, r.frames_skipped, r.id_top1_pct, r.id_top1_grouped_pct,
                r.target_retrieval_pct, r.id_cos, r.pose_err, r.fd) for r in table]
    return runner.fp, numbers, header


#: field -> a value that must move both the fingerprint and the numbers (on the tree above, from
#: the base card restricted to the test split: videos 000 and 001, to keep each run short)
MOVES: dict[str, Any] = {
    "compression": "c40",
    "subset": "all",
    "frames_per_video": 3,
    "no_face_rule": "skip",
    "source_frame_policy": "same_index",
    "detector": "dlib-cnn",
    "id_flip_concat": False,
}
#: moves too, on a tree where one person is in two videos: test_identity_grouped_top1_... below
GROUPS = {"identity_groups"}
#: field -> a value the evaluator that runs does not match
EVALUATOR_FIELDS = {"id_model": "cosface_sphere20", "id_align": "cosface_112x96",
                    "pose_model": "hopenet_robust_a1", "fid_features": "fid_inception_pool3",
                    "fid_crop_size": 256}
NAMES = {"id": "renamed_v1"}


def test_every_field_is_classified() -> None:
    """A field added to the card must be placed in one of the classes this module tests."""
    classified = [*MOVES, *GROUPS, *SINGLE_CHOICES, *EVALUATOR_FIELDS, *NAMES]
    assert len(classified) == len(set(classified))
    assert set(classified) == {f.name for f in fields(QualityProtocol)} - {"variant"}


@pytest.fixture(scope="module")
def baseline(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[tuple], Path]:
    """(fingerprint, numbers, store) of the unchanged card."""
    store = tmp_path_factory.mktemp("base") / "c.sqlite"
    fingerprint, numbers, _ = measure(tree, base_protocol("test"), store)
    return fingerprint, numbers, store


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MOVES))
def test_a_field_moves_the_numbers_with_the_fingerprint(name: str, tree: Path, baseline: tuple,
                                                         tmp_path: Path) -> None:
    value = MOVES[name]
    protocol = replace(base_protocol("test"), **{name: value})
    fingerprint, numbers, _ = measure(tree, protocol, tmp_path / "c.sqlite")
    base_fingerprint, base_numbers, _ = baseline
    assert fingerprint != base_fingerprint, f"{name} does not reach the fingerprint"
    assert numbers != base_numbers, f"{name}={value!r} changes the fingerprint but not the numbers"


@pytest.mark.parametrize("name", sorted(SINGLE_CHOICES))
def test_a_single_choice_field_refuses_another_value(name: str) -> None:
    with pytest.raises(BadInputError, match=f"{name} 'other' is not one of"):
        load_protocol("ffpp_v1", **{name: "other"})


@pytest.mark.parametrize("name", sorted(EVALUATOR_FIELDS))
def test_an_evaluator_field_must_match_what_runs(name: str, tree: Path, tmp_path: Path) -> None:
    from mfsbench.quality.ffpp import FFppTree
    from mfsbench.quality.runner import QualityRunner, calibration_rows
    from mfsbench.quality.store import QualityStore

    protocol = replace(base_protocol(), **{name: EVALUATOR_FIELDS[name]})
    with QualityStore(tmp_path / "c.sqlite") as store:
        with pytest.raises(BadInputError, match=name):
            QualityRunner(protocol=protocol, tree=FFppTree(tree, tree / "splits"), store=store,
                          rows=calibration_rows(), evaluators=_offline(protocol), subset="all",
                          progress=False)
        assert store.counts()["items"] == 0  # refused before any work


def test_offline_cards_never_share_the_official_fingerprint() -> None:
    official, offline = load_protocol("ffpp_v1", frames_per_video=FRAMES), base_protocol()
    assert official.fingerprint() != offline.fingerprint()
    assert (offline.id_model, offline.pose_model, offline.fid_features) == (
        "dlib_resnet128", "landmark_pnp", "fd_dlib128")
    assert "id_model=dlib_resnet128" in offline.variant and "dlib_resnet128" in offline.card()


def test_the_protocol_name_is_not_part_of_the_fingerprint() -> None:
    base = load_protocol()
    renamed = replace(base, id=NAMES["id"])
    assert renamed.fingerprint() == base.fingerprint()
    assert "renamed_v1" in renamed.card()


@pytest.mark.slow
def test_gallery_frame_is_the_first_held_out_frame(baseline: tuple) -> None:
    """What the card's gallery_frame = first_held_out says: the first frame, in frame order, that
    no sampled index or substitution can use — here frame 0 (bin centres leave 0..2 unused)."""
    from mfsbench.quality.frames import sample_indices
    from mfsbench.quality.runner import gallery_candidates
    from mfsbench.quality.store import QualityStore

    candidates = gallery_candidates(sample_indices(VIDEO_FRAMES, FRAMES), VIDEO_FRAMES)
    assert candidates[0] == 0 and BLANK_FRAME not in candidates
    fingerprint, _numbers, store_path = baseline
    with QualityStore(store_path) as store:
        chosen = {v: store.selection(fingerprint, v, "gallery") for v in ("000", "001")}
    assert {v: c["frame"] for v, c in chosen.items()} == dict.fromkeys(chosen, 0)


# ------------------------------------------------------------------------------------- C3: groups


@pytest.fixture(scope="module")
def twin_tree(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tree with video 002 replaced by a copy of 000: one person in two videos, as in FF++."""
    root = tmp_path_factory.mktemp("twins") / "ffpp"
    shutil.copytree(tree, root)
    videos = root / "original_sequences" / "youtube" / "c23" / "videos"
    shutil.copyfile(videos / "000.mp4", videos / "002.mp4")
    return root


@pytest.mark.slow
def test_identity_grouped_top1_counts_a_retrieved_twin_as_a_hit(twin_tree: Path, tmp_path: Path) -> None:
    groups = tmp_path / "identity_groups.json"
    groups.write_text(json.dumps([["000", "002"]]))
    plain = base_protocol()
    grouped = replace(plain, identity_groups=str(groups))
    fp_plain, rows_plain, _ = measure(twin_tree, plain, tmp_path / "plain.sqlite")
    fp_grouped, rows_grouped, header = measure(twin_tree, grouped, tmp_path / "grouped.sqlite")
    assert fp_plain != fp_grouped
    plain_by, grouped_by = {r[0]: r for r in rows_plain}, {r[0]: r for r in rows_grouped}
    # (key, ok, skipped, top1, grouped top1, target retrieved, ...): targets 000 and 002 are the
    # same frames, so their floor copies retrieve the same gallery entry: one of the two misses
    assert plain_by["target_copy"][5] == 75.0
    assert grouped_by["target_copy"][5] == 100.0
    assert plain_by["target_copy"][3:5] == (0.0, 0.0)  # never the source, grouped or not
    oracle_plain, oracle_grouped = plain_by["identity_oracle"], grouped_by["identity_oracle"]
    assert oracle_plain[3] == oracle_plain[4] < 100.0  # the twin's entry is a miss without groups
    assert oracle_grouped[4] == 100.0 and oracle_grouped[3] == oracle_plain[3]  # video-level unchanged
    assert header.run["identity_groups"]["groups"] == [["000", "002"]]


def test_groups_file_is_validated_and_fingerprinted(tmp_path: Path) -> None:
    groups = tmp_path / "g.json"
    groups.write_text(json.dumps([["000", "002"]]))
    first = load_protocol(identity_groups=str(groups))
    groups.write_text(json.dumps([["000", "003"]]))
    assert load_protocol(identity_groups=str(groups)).fingerprint() != first.fingerprint()
    groups.write_text(json.dumps([["000", "003"], ["003"]]))
    with pytest.raises(BadInputError, match="twice"):
        load_protocol(identity_groups=str(groups))
    with pytest.raises(BadInputError, match="not found"):
        load_protocol(identity_groups=str(tmp_path / "absent.json"))


def test_retrieval_rates_on_hand_checked_queries() -> None:
    from mfsbench.quality.aggregate import retrieval_rates
    from mfsbench.quality.gallery import group_map

    queries = [("t1", "s1", "s1"), ("t2", "s2", "s2b"), ("t3", "s3", "t3"), ("t4", "s4", "x")]
    plain = retrieval_rates(queries, {})
    assert (plain.top1_pct, plain.grouped_top1_pct, plain.target_pct) == (25.0, 25.0, 25.0)
    grouped = retrieval_rates(queries, group_map([["s2", "s2b"]]))
    assert (grouped.top1_pct, grouped.grouped_top1_pct, grouped.target_pct) == (25.0, 50.0, 25.0)
    assert retrieval_rates([], {}).top1_pct is None


# --------------------------------------------------------------------------------- C3: pose skip


@pytest.mark.slow
def test_a_failed_pose_fit_is_a_counted_skip_not_a_nan(tree: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """landmark_pnp's solvePnP failing on one frame: that frame is skipped with its reason, and
    every row's pose error stays a number."""
    import cv2

    real = cv2.solvePnP
    calls = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        ok, rvec, tvec = real(*args, **kwargs)
        return (False, rvec, tvec) if len(calls) == 3 else (ok, rvec, tvec)

    monkeypatch.setattr(cv2, "solvePnP", fails_once)
    _, numbers, _ = measure(tree, base_protocol("test"), tmp_path / "c.sqlite")
    assert len(calls) > 3
    poses = [r[7] for r in numbers]
    assert all(p is not None and np.isfinite(p) for p in poses), numbers
    from mfsbench.quality.store import QualityStore

    with QualityStore(tmp_path / "c.sqlite") as store:
        reasons = [r for (r,) in store.db.execute("SELECT reason FROM frame_results WHERE status='skipped'")]
    assert any("pose fit failed" in (r or "") and "landmark_pnp" in (r or "") for r in reasons), reasons
