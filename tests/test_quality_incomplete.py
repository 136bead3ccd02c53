"""An incomplete FF++ copy is refused (every problem on the console) unless ``--allow-incomplete``, and
two runs on one cache never collide (issue 16, item 5).

Before: ``quality`` on a tree with a missing split file, broken videos or ids in two splits exited 0
with nothing on the console while the table changed (93.10 -> 100.00 %), and a second run on the
same ``--out`` died with an SQLite "database is locked" traceback.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfsbench.errors import BadInputError
from mfsbench.quality.ffpp import FFppTree
from mfsbench.quality.problems import DatasetProblem, console_lines, found_while_decoding
from mfsbench.quality.store import QualityStore

MP4_HEAD = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 500  # passes the header check, decodes nothing


def _layout(root: Path, splits: dict[str, list[list[str]]], videos: list[str],
            swaps: list[str] | None = None) -> FFppTree:
    """A tree of placeholder files (header-level checks only) with the given split files."""
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for name, pairs in splits.items():
        (root / "splits" / f"{name}.json").write_text(json.dumps(pairs))
    originals = root / "original_sequences" / "youtube" / "c23" / "videos"
    originals.mkdir(parents=True, exist_ok=True)
    for video in videos:
        (originals / f"{video}.mp4").write_bytes(MP4_HEAD)
    if swaps is not None:
        method = root / "manipulated_sequences" / "Deepfakes" / "c23" / "videos"
        method.mkdir(parents=True, exist_ok=True)
        for stem in swaps:
            (method / f"{stem}.mp4").write_bytes(MP4_HEAD)
    return FFppTree(root, root / "splits")


def test_tree_problems_name_the_file_the_fix_and_what_is_left_out(tmp_path: Path) -> None:
    tree = _layout(tmp_path, {"train": [["000", "001"]], "test": [["001", "002"]]}, ["000", "001"],
                   swaps=["000_001", "001_000", "001_002"])
    problems = tree.problems()
    kinds = {p.kind for p in problems}
    assert kinds == {"missing split file", "video id in two split files", "missing original video",
                     "missing Deepfakes video"}, problems
    split = next(p for p in problems if p.kind == "missing split file")
    assert split.subject.endswith("val.json") and "FaceForensics" in split.fix
    assert "every pair" in split.left_out
    original = next(p for p in problems if p.kind == "missing original video")
    assert original.key == "002" and "002.mp4" in original.subject and "download" in original.fix
    assert "every pair" in original.left_out
    swap = next(p for p in problems if p.kind == "missing Deepfakes video")
    assert swap.subject.endswith("002_001.mp4") and swap.left_out == "this pair in the Deepfakes row"
    # scoped to what the evaluation uses: the test subset, and no method rows
    scoped = tree.problems("test", methods=[])
    assert {p.kind for p in scoped} == {"video id in two split files", "missing original video"}
    assert DatasetProblem.from_dict(split.to_dict()) == split


def test_an_empty_folder_is_one_problem_not_one_per_video(tmp_path: Path) -> None:
    tree = _layout(tmp_path, {"train": [["000", "001"]], "val": [], "test": [["002", "003"]]}, [],
                   swaps=[])
    problems = tree.problems()
    assert [p.kind for p in problems] == ["empty originals folder", "empty Deepfakes folder"]
    assert problems[1].left_out == "the whole Deepfakes row"


def test_console_lines_group_by_kind_with_counts_and_the_fix() -> None:
    problems = [DatasetProblem("missing original video", f"missing original video /r/{v}.mp4", "download it",
                               "every pair", v) for v in ("003", "004")]
    problems.append(DatasetProblem("missing split file", "missing split file /s/val.json", "copy val.json",
                                   "its pairs"))
    lines = console_lines(problems, "/r")
    assert lines[0] == "dataset problems under /r: 3"
    assert lines[1] == "  missing original video: 2; left out: every pair; fix: download it"
    assert lines[2:4] == ["    missing original video /r/003.mp4", "    missing original video /r/004.mp4"]
    assert lines[4].startswith("  missing split file: 1") and lines[5] == "    missing split file /s/val.json"
    assert console_lines([], "/r") == []


def test_problems_found_while_decoding_are_read_from_the_store(tmp_path: Path) -> None:
    with QualityStore(tmp_path / "c.sqlite") as store:
        store.put_video("fp", "003", "error", reason="/r/003.mp4: no decodable frame (corrupt stream); "
                        "re-download it", n_frames=None)
        store.put_video("fp", "004", "error", reason="/r/004.mp4: zero-byte video; re-download it",
                        n_frames=None)
        store.put_row("fp", "ffpp:Deepfakes@c23", "set", 0, {"kind": "method", "method": "Deepfakes"})
        for target, reason in (("000", "missing manipulated video /r/m/000_001.mp4"),
                               ("001", "undecodable manipulated video: /r/m/001_000.mp4: not a readable "
                                       "video (corrupt or unknown codec); re-download it"),
                               ("002", "target video unusable: /r/002.mp4: ...")):
            store.put_item("fp", "ffpp:Deepfakes@c23", "set", target=target, source="x", status="skipped",
                           reason=reason, results=[], timings={})
        known = [DatasetProblem("zero-byte original video", "zero-byte original video /r/004.mp4", "x", "y",
                                "004")]
        found = found_while_decoding(store, "fp", "set", known)
    assert [(p.kind, p.key) for p in found] == [
        ("undecodable original video", "003"), ("missing Deepfakes video", "Deepfakes:000_x"),
        ("undecodable Deepfakes video", "Deepfakes:001_x")]
    assert "(no decodable frame (corrupt stream))" in found[0].subject and "/r/003.mp4" in found[0].subject


# ----------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mfsbench.quality.mini import build_mini_ffpp

    try:
        return build_mini_ffpp(tmp_path_factory.mktemp("mini"), people=4, frames=6)
    except RuntimeError as exc:  # registry unreachable: no real faces, no test (never fake data)
        pytest.skip(f"face photos unavailable: {exc}")


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["quality", "--root", str(root), "--splits-dir", str(root / "splits"), "--evaluators", "offline",
            "--out", str(out), "--no-progress", *extra]


def _damaged(mini: Path, folder: Path) -> tuple[Path, dict[str, Path]]:
    """The mini tree with one header-less original, a missing swap video and an id in two splits."""
    root = folder / "ffpp"
    shutil.copytree(mini, root)
    videos = root / "original_sequences" / "youtube" / "c23" / "videos"
    splits = {n: json.loads((root / "splits" / f"{n}.json").read_text()) for n in ("train", "val", "test")}
    test_pair, val_pair = splits["test"][0], splits["val"][0]
    broken = videos / f"{val_pair[0]}.mp4"
    broken.write_bytes(b"\x00not an mp4\x00" * 64)
    swaps = root / "manipulated_sequences" / "MiniPaste" / "c23" / "videos"
    swap = swaps / f"{test_pair[0]}_{test_pair[1]}.mp4"
    swap.unlink()
    splits["test"].append(val_pair)  # both ids of the val pair now in two split files
    (root / "splits" / "test.json").write_text(json.dumps(splits["test"]))
    return root, {"broken": broken, "swap": swap}


@pytest.mark.slow
def test_an_incomplete_tree_is_refused_then_marked_when_allowed(mini: Path, tmp_path: Path, run_cli) -> None:
    root, files = _damaged(mini, tmp_path)
    out = tmp_path / "out"
    refused = run_cli(*_args(root, out))
    assert refused.code == 2, refused.err
    err = refused.err.splitlines()
    assert err[0] == f"dataset problems under {root}: 4"
    assert f"    corrupt original video {files['broken']} (no MP4 header)" in err
    assert f"    missing MiniPaste video {files['swap']}" in err
    assert any(line.startswith("  video id in two split files: 2; left out: nothing") for line in err)
    assert err[-1].startswith("mfsbench quality: error: the FF++ copy under")
    assert "--allow-incomplete" in err[-1]
    assert "Traceback" not in refused.err
    assert not (out / "table2_quality.md").exists() and not (out / "quality_cache.sqlite").exists()

    allowed = run_cli(*_args(root, out, "--allow-incomplete"))
    assert allowed.code == 0, allowed.err
    assert "marked INCOMPLETE" in allowed.err
    md = (out / "table2_quality.md").read_text(encoding="utf-8")
    assert md.splitlines()[0].endswith("INCOMPLETE DATASET")
    assert "INCOMPLETE DATASET: 4 problem(s)" in md
    assert str(files["broken"]) in md and str(files["swap"]) in md
    with (out / "table2_quality.csv").open(encoding="utf-8") as handle:
        assert {row["dataset_problems"] for row in csv.DictReader(handle)} == {"4"}
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    rows = [r for r in records if r["model"] != "pipeline"]
    assert rows and all(r["info"]["dataset_complete"] is False for r in rows)
    assert rows[0]["info"]["dataset_problems"] == {"corrupt original video": 1, "missing MiniPaste video": 1,
                                                   "video id in two split files": 2}


@pytest.mark.slow
def test_a_video_that_does_not_decode_fails_the_run_after_its_report(mini: Path, tmp_path: Path,
                                                                     run_cli) -> None:
    """A header that looks fine but a stream that does not decode is only found by decoding: the
    report is written (marked), the console names the video, and the exit is 2 until allowed."""
    root = tmp_path / "ffpp"
    shutil.copytree(mini, root)
    test_pair = json.loads((root / "splits" / "test.json").read_text())[0]
    video = root / "original_sequences" / "youtube" / "c23" / "videos" / f"{test_pair[1]}.mp4"
    video.write_bytes(video.read_bytes()[:48] + b"\x00" * 4096)  # the ftyp box survives, the stream not
    out = tmp_path / "out"
    first = run_cli(*_args(root, out, "--subset", "test", "--methods", "none"))
    assert first.code == 2, first.err
    assert f"dataset problems under {root} (found while decoding): 1" in first.err
    assert f"    undecodable original video {video}" in first.err
    assert "--allow-incomplete" in first.err.splitlines()[-1]
    assert "INCOMPLETE DATASET: 1 problem(s)" in (out / "table2_quality.md").read_text(encoding="utf-8")
    again = run_cli(*_args(root, out, "--subset", "test", "--methods", "none", "--allow-incomplete"))
    assert again.code == 0, again.err
    assert "0 work item(s) evaluated" in again.err  # accepted from the cache, nothing redone


# ------------------------------------------------------------------------------ concurrent runs

HOLDER = """
import sys
from pathlib import Path
from mfsbench.quality.lock import hold_cache, records_turn
lock = hold_cache if sys.argv[1] == "cache" else records_turn
with lock(Path(sys.argv[2]), "quality"):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def _holder(kind: str, path: Path) -> subprocess.Popen[str]:
    """A second process that holds ``path``'s lock until its stdin closes (signals: "held" on stdout)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def _release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=60) == 0


def test_records_wait_their_turn_with_a_bound(tmp_path: Path) -> None:
    from mfsbench.quality.lock import records_turn

    records = tmp_path / "records.jsonl"
    holder = _holder("records", records)
    try:
        with pytest.raises(BadInputError, match=rf"stayed in use by another run \(mfsbench quality pid "
                                                rf"{holder.pid}, started .*\) for 0 s"), \
                records_turn(records, "quality", wait_s=0.2):
            pass
    finally:
        _release(holder)
    with records_turn(records, "quality", wait_s=5.0):  # free again: taken at once
        assert json.loads(records.with_name("records.jsonl.lock").read_text())["pid"] == os.getpid()


def test_a_store_transaction_holds_the_write_lock_only_to_commit(tmp_path: Path) -> None:
    """Swapping and evaluating happen inside a work item's transaction; another process must be able to
    write meanwhile (it used to wait 30 s behind the item and then fail with "database is locked")."""
    import sqlite3

    with QualityStore(tmp_path / "c.sqlite") as store, store.transaction():
        store.put_video("fp", "000", "ok", reason=None, n_frames=3)
        other = sqlite3.connect(str(tmp_path / "c.sqlite"), timeout=0.1, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # raised "database is locked" before
        other.execute("INSERT INTO meta VALUES ('other', '1')")
        other.execute("COMMIT")
        other.close()
    with QualityStore(tmp_path / "c.sqlite") as store:
        assert store.video("fp", "000") == ("ok", None, 3, None) and store.meta("other") == 1


@pytest.mark.slow
def test_a_second_run_on_one_cache_is_refused_naming_the_first(mini: Path, tmp_path: Path) -> None:
    """Two real ``mfsbench quality`` processes on one --out: the second is refused in one line naming the
    first's pid, the first is unaffected, and a later run only re-renders (nothing lost or doubled)."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mfsbench.cli", *_args(mini, out, "--subset", "test", "--methods",
                                                            "none")]
    lock = out / "quality_cache.sqlite.lock"
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while first.poll() is None:  # event: the first run has written itself into the lock file
            try:
                if json.loads(lock.read_text() or "{}").get("pid") == first.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)  # polling for the event above, not waiting for a guessed duration
        assert first.poll() is None, first.communicate()
        os.kill(first.pid, signal.SIGSTOP)  # frozen while holding the cache: no race with its finish
        try:
            second = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _out, first_err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr  # one line, no traceback
    assert f"in use by another run (mfsbench quality pid {first.pid}, started" in second.stderr
    assert first.returncode == 0, first_err
    third = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert third.returncode == 0 and "0 work item(s) evaluated" in third.stderr, third.stderr
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    keys = [(r["model"], r["info"].get("row")) for r in records if r["model"] != "pipeline"]
    assert len(keys) == len(set(keys)) == 2  # the two calibration rows, once each
