"""The FF++ data side of ``mfsbench quality``: protocol file, tree loader, frame sampling, mini tree.

The mini tree is built once per module from the real registry photos (skipped, with pip's reason,
when they cannot be fetched: never faked). Broken copies of it check that every problem a real
download can have (missing split file, missing, zero-byte or corrupt video) is named with its path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mfsbench.errors import BadInputError
from mfsbench.quality.ffpp import FFppTree, Pair
from mfsbench.quality.frames import VideoError, read_frames, sample_indices, video_frame_count
from mfsbench.quality.protocol import load_protocol, packaged_protocols, presets

PEOPLE, FRAMES = 6, 12


# ------------------------------------------------------------------------------------------ protocol


def test_default_protocol_pins_the_spec_choices() -> None:
    protocol = load_protocol()
    assert "ffpp_v1" in packaged_protocols()
    assert (protocol.id, protocol.compression, protocol.subset) == ("ffpp_v1", "c23", "all")
    assert protocol.frames_per_video == 10 and protocol.source_frame_policy == "most_frontal"
    assert protocol.no_face_rule == "next_frame" and protocol.detector == "dlib"
    assert protocol.id_flip_concat is True and protocol.pose_units == "degrees"
    assert protocol.variant == ""


def test_overrides_and_presets_change_the_fingerprint_and_the_card() -> None:
    base = load_protocol()
    assert load_protocol("ffpp_v1").fingerprint() == base.fingerprint()  # stable
    assert len(base.fingerprint()) == 16
    two = load_protocol(frames_per_video="2", subset="test", compression=None)  # CLI strings, None ignored
    assert (two.frames_per_video, two.subset, two.compression) == (2, "test", "c23")
    assert two.fingerprint() != base.fingerprint()
    assert "frames_per_video=2" in two.variant and "subset=test" in two.variant
    megafs = load_protocol("ffpp_v1@megafs")
    assert megafs.source_frame_policy == "same_index" and megafs.variant == "megafs"
    assert megafs.fingerprint() not in (base.fingerprint(), two.fingerprint())
    assert set(presets()) >= {"megafs", "reliableswap"}
    # the same values reached by a preset or by an override share one fingerprint
    assert load_protocol(source_frame_policy="same_index").fingerprint() == megafs.fingerprint()
    card = two.card()
    assert "`ffpp_v1`" in card and two.fingerprint() in card and "| frames_per_video | 2 |" in card
    assert "| id_flip_concat | yes |" in card


@pytest.mark.parametrize(("args", "kwargs", "needle"), [
    (("nope",), {}, "unknown protocol 'nope'"),
    (("ffpp_v1@nope",), {}, "no preset 'nope'"),
    ((), {"frames": 3}, "unknown protocol setting 'frames'"),
    ((), {"frames_per_video": "ten"}, "frames_per_video must be an integer"),
    ((), {"frames_per_video": 0}, "frames_per_video must be >= 1"),
    ((), {"compression": "c99"}, "compression 'c99' is not one of"),
    ((), {"source_frame_policy": "random"}, "source_frame_policy 'random'"),
])
def test_bad_protocol_input_names_the_problem(args: tuple, kwargs: dict, needle: str) -> None:
    with pytest.raises(BadInputError, match=needle.replace("(", r"\(")):
        load_protocol(*args, **kwargs)


def test_protocol_from_a_file_path_checks_missing_and_unknown_keys(tmp_path: Path) -> None:
    from mfsbench.quality import protocol as module

    text = (Path(module.__file__).parent / "protocols" / "ffpp_v1.toml").read_text()
    good = tmp_path / "mine.toml"
    good.write_text(text.replace('id = "ffpp_v1"', 'id = "mine_v1"'))
    assert load_protocol(str(good)).id == "mine_v1"
    missing = tmp_path / "missing.toml"
    missing.write_text(text.replace("frames_per_video = 10\n", ""))
    with pytest.raises(BadInputError, match=r"missing setting.*frames_per_video"):
        load_protocol(str(missing))
    extra = tmp_path / "extra.toml"
    extra.write_text("typo_key = 1\n" + text)
    with pytest.raises(BadInputError, match=r"unknown setting.*typo_key"):
        load_protocol(str(extra))
    with pytest.raises(BadInputError, match="not found"):
        load_protocol(str(tmp_path / "absent.toml"))


# ------------------------------------------------------------------------------------------ frames


def test_sample_indices_are_even_bin_centres() -> None:
    assert sample_indices(100, 10) == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    assert sample_indices(12, 2) == [3, 9]
    assert sample_indices(3, 10) == [0, 1, 2]
    assert sample_indices(0, 10) == [] and sample_indices(10, 0) == []
    picks = sample_indices(301, 10)
    assert len(set(picks)) == 10 and picks == sorted(picks) and picks[0] > 0 and picks[-1] < 300


def test_bad_video_files_raise_one_line_naming_the_file(tmp_path: Path) -> None:
    empty, corrupt = tmp_path / "000.mp4", tmp_path / "001.mp4"
    empty.write_bytes(b"")
    corrupt.write_bytes(b"\x00not an mp4\x00" * 64)
    for path, needle in ((empty, "zero-byte"), (corrupt, "corrupt"), (tmp_path / "9.mp4", "not found")):
        with pytest.raises(VideoError, match=needle) as info:
            video_frame_count(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert isinstance(info.value, BadInputError)
    with pytest.raises(VideoError, match="corrupt"):
        list(read_frames(corrupt, [0]))


def _grey_video(path: Path, frames: int) -> Path:
    """A tiny mp4 whose frame i is a flat grey of level 20·i (decoding, not faces, is under test)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 32))
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write mp4 here")
    for i in range(frames):
        writer.write(np.full((32, 32, 3), 20 * i, np.uint8))
    writer.release()
    return path


def test_decoded_frames_decode_once_are_read_only_and_respect_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mfsbench.quality import frames as frames_module
    from mfsbench.quality.frames import DecodedFrames

    video = _grey_video(tmp_path / "grey.mp4", 8)
    asked: list[list[int]] = []
    real = frames_module.read_frames
    monkeypatch.setattr(frames_module, "read_frames",
                        lambda path, idx: asked.append(list(idx)) or real(path, idx))
    cache = DecodedFrames()
    first, decoded = cache.read(video, [5, 2, 2])
    assert sorted(first) == [2, 5] and decoded == 2
    assert abs(float(first[5].mean()) - 100) < 8  # the right frame (levels are 20 apart), within mp4v loss
    with pytest.raises(ValueError, match="read-only"):
        first[2][0, 0, 0] = 1
    again, decoded = cache.read(video, [2, 5, 6, 99])  # 99 is past the end: simply absent
    assert decoded == 1 and sorted(again) == [2, 5, 6] and again[2] is first[2]
    assert asked == [[2, 5], [6, 99]]  # only what was not decoded yet
    small = DecodedFrames(max_bytes=2 * first[2].nbytes)
    small.read(video, [0, 1, 2])
    _, decoded = small.read(video, [0, 2])
    assert decoded == 1  # frame 0, the oldest, was evicted; 2 was kept
    (tmp_path / "grey.mp4").unlink()
    assert sorted(cache.read(video, [2, 5])[0]) == [2, 5]  # served from memory, no file needed
    with pytest.raises(VideoError, match="not found"):
        cache.read(video, [7])


# ------------------------------------------------------------------------------------------ tree (no video)


def _splits(folder: Path, **splits: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, pairs in splits.items():
        (folder / f"{name}.json").write_text(json.dumps(pairs))
    return folder


def test_pairs_give_both_directions_per_subset_and_count_missing_splits(tmp_path: Path) -> None:
    splits = _splits(tmp_path / "splits", train=[["010", "011"]], test=[["000", "003"]])
    tree = FFppTree(tmp_path, splits)
    assert tree.missing_splits == ["val"]  # known before any pairs are asked for
    assert tree.pairs("test") == [Pair("000", "003"), Pair("003", "000")]
    assert Pair("000", "003").stem == "000_003"
    assert [p.stem for p in tree.pairs("all")] == ["000_003", "003_000", "010_011", "011_010"]
    assert tree.pairs("val") == []
    assert tree.missing_splits == ["val"]
    assert tree.split_of("011") == "train" and tree.split_of("999") is None
    problems = tree.validate()
    assert any("missing split file" in p and str(splits / "val.json") in p for p in problems)
    with pytest.raises(BadInputError, match="unknown subset"):
        tree.pairs("dev")
    (splits / "train.json").write_text('[["000"]]')
    with pytest.raises(BadInputError, match="list of"):
        FFppTree(tmp_path, splits).pairs("all")
    (splits / "train.json").write_text("{not json")
    with pytest.raises(BadInputError, match=r"train\.json"):
        FFppTree(tmp_path, splits).pairs("all")


def test_validate_names_missing_root_and_originals(tmp_path: Path) -> None:
    assert "is not a directory" in FFppTree(tmp_path / "nope", tmp_path).validate()[0]
    splits = _splits(tmp_path / "splits", train=[["000", "001"]], val=[], test=[["001", "002"]])
    problems = FFppTree(tmp_path, splits).validate()
    assert any("originals folder" in p and "original_sequences/youtube/c23/videos" in p for p in problems)
    assert any("001" in p and "appears in" in p for p in problems)  # an id in two splits


def test_raw_and_c0_are_aliases(tmp_path: Path) -> None:
    videos = tmp_path / "original_sequences" / "youtube" / "raw" / "videos"
    videos.mkdir(parents=True)
    method = tmp_path / "manipulated_sequences" / "Deepfakes" / "raw" / "videos"
    method.mkdir(parents=True)
    tree = FFppTree(tmp_path, tmp_path, compression="c0")
    assert tree.original_video("000") == videos / "000.mp4"
    assert tree.manipulated_video("Deepfakes", Pair("000", "003")) == method / "000_003.mp4"
    assert tree.methods() == ["Deepfakes"]
    assert FFppTree(tmp_path, tmp_path, compression="c23").methods() == []


# ------------------------------------------------------------------------------------------ mini tree


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mfsbench.quality.mini import build_mini_ffpp

    try:
        return build_mini_ffpp(tmp_path_factory.mktemp("mini"), people=PEOPLE, frames=FRAMES)
    except RuntimeError as exc:  # no package index and no cache: no real faces, no test
        pytest.skip(f"face photos unavailable: {exc}")


def _copy(mini: Path, tmp_path: Path) -> tuple[Path, FFppTree]:
    root = tmp_path / "copy"
    shutil.copytree(mini, root)
    return root, FFppTree(root, root / "splits")


def test_mini_tree_has_the_official_layout_and_validates(mini: Path) -> None:
    tree = FFppTree(mini, mini / "splits")
    assert tree.validate() == []
    assert tree.methods() == ["MiniPaste"]
    splits = {n: json.loads((mini / "splits" / f"{n}.json").read_text()) for n in ("train", "val", "test")}
    ids = sorted(v for pairs in splits.values() for pair in pairs for v in pair)
    assert ids == [f"{k:03d}" for k in range(PEOPLE)]  # every id exactly once
    assert all(len(pairs) == 1 for pairs in splits.values())
    assert len(tree.pairs("all")) == PEOPLE and len(tree.pairs("test")) == 2
    for pair in tree.pairs("all"):
        assert tree.original_video(pair.target).is_file()
        assert tree.manipulated_video("MiniPaste", pair).is_file()
    manifest = json.loads((mini / "mini_ffpp.json").read_text())
    identities = [p["identity"] for p in manifest["people"].values()]
    assert len(set(identities)) == PEOPLE  # distinct people, not one face repeated
    assert "not a face-swap network" in manifest["methods"]["MiniPaste"]
    assert max(p.stat().st_size for p in mini.rglob("*.mp4")) < 2_000_000


def test_mini_videos_decode_and_show_one_real_face(mini: Path) -> None:
    from mfsbench.faces.detectors import get_detector

    tree = FFppTree(mini, mini / "splits")
    detector = get_detector()
    found = []
    for video in ("000", "003"):
        path = tree.original_video(video)
        count = video_frame_count(path)
        assert count == FRAMES
        indices = sample_indices(count, 3)
        frames = dict(read_frames(path, indices))
        assert sorted(frames) == indices
        assert all(f.shape == (256, 256, 3) and f.dtype == np.uint8 for f in frames.values())
        found += [len(detector.detect(f)) for f in frames.values()]
        # the jitter moves the face: consecutive frames differ
        first, second = (f for _, f in read_frames(path, [0, 1]))
        assert np.abs(first.astype(int) - second.astype(int)).mean() > 0.5
    assert found.count(1) >= len(found) - 1
    pasted = dict(read_frames(tree.manipulated_video("MiniPaste", Pair("000", "001")), [5]))[5]
    original = dict(read_frames(tree.original_video("000"), [5]))[5]
    diff = np.abs(pasted.astype(int) - original.astype(int)).mean(axis=2)
    assert (diff > 30).mean() > 0.05  # the face region changed
    assert diff[:20].mean() < 5 and diff[-20:].mean() < 10  # the background did not


def test_broken_copies_name_each_problem(mini: Path, tmp_path: Path) -> None:
    root, tree = _copy(mini, tmp_path)
    videos = root / "original_sequences" / "youtube" / "c23" / "videos"
    (root / "splits" / "val.json").unlink()
    (videos / "000.mp4").unlink()
    (videos / "001.mp4").write_bytes(b"")
    (videos / "004.mp4").write_bytes(b"\x00not an mp4\x00" * 64)
    (root / "manipulated_sequences" / "MiniPaste" / "c23" / "videos" / "005_004.mp4").unlink()
    problems = tree.validate()
    joined = "\n".join(problems)
    assert tree.missing_splits == ["val"]
    assert f"missing split file {root / 'splits' / 'val.json'}" in joined
    assert f"missing original video {videos / '000.mp4'}" in joined
    assert f"zero-byte original video {videos / '001.mp4'}" in joined
    assert f"corrupt original video {videos / '004.mp4'}" in joined
    assert "missing MiniPaste video" in joined and "005_004.mp4" in joined
    assert "002.mp4" not in joined and "002_003" not in joined  # val's pair left with its split file
    assert all("download" in p or "splits" in p for p in problems)  # each names its fix
    assert len(tree.pairs("all")) == PEOPLE - 2  # the other splits still count
    with pytest.raises(VideoError, match="zero-byte"):
        video_frame_count(videos / "001.mp4")
    with pytest.raises(VideoError, match="corrupt"):
        video_frame_count(videos / "004.mp4")


@pytest.mark.cli
def test_ffpp_mini_cli_writes_the_tree(run_cli, tmp_path: Path, mini: Path) -> None:
    out = tmp_path / "tree"
    result = run_cli("ffpp-mini", str(out), "--people", "2", "--frames", "4", "--seed", "1")
    assert result.code == 0, result.err
    assert str(out) in result.out
    tree = FFppTree(out, out / "splits")
    assert tree.validate() == [] and tree.methods() == ["MiniPaste"]
    assert tree.pairs("all") == [Pair("000", "001"), Pair("001", "000")]
    assert video_frame_count(tree.original_video("001")) == 4
    assert json.loads((out / "mini_ffpp.json").read_text())["seed"] == 1
    # deterministic: a second build writes the same bytes
    again = tmp_path / "again"
    assert run_cli("ffpp-mini", str(again), "--people", "2", "--frames", "4", "--seed", "1").code == 0
    for path in sorted(out.rglob("*.mp4")):
        assert path.read_bytes() == (again / path.relative_to(out)).read_bytes()
    smaller = run_cli("ffpp-mini", str(out), "--people", "2", "--frames", "3")  # rebuild in place
    assert smaller.code == 0 and video_frame_count(tree.original_video("001")) == 3
    real = tmp_path / "real_ffpp"
    (real / "original_sequences").mkdir(parents=True)
    refused = run_cli("ffpp-mini", str(real))
    assert refused.code == 2 and "did not write" in refused.err  # never overwrites a real FF++ copy
    bad = run_cli("ffpp-mini", str(tmp_path / "odd"), "--people", "3")
    assert bad.code == 2 and "--people 3" in bad.err and len(bad.err.strip().splitlines()) == 1
    many = run_cli("ffpp-mini", str(tmp_path / "many"), "--people", "40")
    assert many.code == 2 and "distinct people" in many.err
