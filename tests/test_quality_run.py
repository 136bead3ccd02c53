"""The quality run's cache, resume, shards and report (issue 4).

Unit tests pin the store's guarantees (idempotent inserts, all-or-nothing work items, merge = union);
the end-to-end tests run the real pipeline (dlib detection, offline evaluators, random-weight
student) on the mini FF++ tree built from registry face photos, kill a run with SIGKILL half-way and
check that the re-run ends with the same numbers and no duplicate row.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mfsbench.errors import BadInputError
from mfsbench.faces.types import Face
from mfsbench.quality.runner import (
    gallery_candidates,
    outside_share,
    parse_shard,
    shard_pairs,
    substitution_windows,
)
from mfsbench.quality.store import FrameResult, QualityStore, merge

REPO = Path(__file__).resolve().parents[1]


def _face(x: float = 10.0) -> Face:
    lmk = np.array([[x, 10], [x + 20, 10], [x + 10, 20], [x + 3, 30], [x + 17, 30]], float)
    return Face(np.array([x - 5, 0, x + 25, 40.0]), 0.9, lmk)


def _fill(store: QualityStore, target: str, row: str = "r") -> None:
    with store.transaction():
        store.put_detection("fp", target, 3, _face())
        store.put_detection("fp", target, 4, None)
        store.put_output("fp", row, "ev@x", target=target, source="s", frame=3, kind="embedding",
                         value=np.arange(4.0))
        store.put_item("fp", row, "set", target=target, source="s", status="ok", reason=None,
                       results=[FrameResult(3, "ok", None, True, 0.5, 1.0),
                                FrameResult(4, "skipped", "no face")],
                       timings={"detect": (0.1, 2)}, planned=2)


def test_store_inserts_are_idempotent_and_round_trip(tmp_path: Path) -> None:
    with QualityStore(tmp_path / "c.sqlite") as store:
        _fill(store, "000")
        first = store.counts()
        _fill(store, "000")
        assert store.counts() == first
        assert first["detections"] == 2 and first["items"] == 1 and first["frame_results"] == 2
        faces = store.detections("fp", "000")
        assert faces[4] is None
        np.testing.assert_array_equal(faces[3].landmarks5, _face().landmarks5)
        np.testing.assert_array_equal(store.output("fp", "r", "ev@x", target="000", source="s", frame=3,
                                                   kind="embedding"), np.arange(4.0))
        assert store.item_done("fp", "r", "set", "000", "s")
        assert store.items("fp", "r", "set") == [("000", "s", "ok", None, 1, 1)]


def test_store_work_item_is_all_or_nothing(tmp_path: Path) -> None:
    with QualityStore(tmp_path / "c.sqlite") as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.put_detection("fp", "000", 1, _face())
            raise RuntimeError("killed half-way")
        assert store.counts()["detections"] == 0


def test_store_rejects_a_file_that_is_not_a_cache(tmp_path: Path) -> None:
    bad = tmp_path / "not.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BadInputError, match="cannot use"):
        QualityStore(bad)


def test_merge_is_the_union_and_repeatable(tmp_path: Path) -> None:
    with QualityStore(tmp_path / "a.sqlite") as a:
        _fill(a, "000")
    with QualityStore(tmp_path / "b.sqlite") as b:
        _fill(b, "001")
    counts = merge(tmp_path / "m.sqlite", [tmp_path / "a.sqlite", tmp_path / "b.sqlite"])
    again = merge(tmp_path / "m.sqlite", [tmp_path / "a.sqlite", tmp_path / "b.sqlite"])
    assert counts == again
    assert counts["items"] == 2 and counts["detections"] == 4
    with pytest.raises(BadInputError, match="not found"):
        merge(tmp_path / "m.sqlite", [tmp_path / "missing.sqlite"])


def test_shards_partition_the_pairs() -> None:
    class P:
        def __init__(self, t: str, s: str) -> None:
            self.target, self.source = t, s

    pairs = [P(f"{i:03d}", f"{(i + 1) % 7:03d}") for i in range(7)]
    parts = [shard_pairs(pairs, (i, 3)) for i in range(3)]
    keys = sorted((p.target, p.source) for part in parts for p in part)
    assert keys == sorted((p.target, p.source) for p in pairs)
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "a/2", "1", "-1/2"):
        with pytest.raises(BadInputError, match="--shard"):
            parse_shard(bad)


def test_gallery_frames_are_held_out_from_target_frames() -> None:
    sampled = [0, 5, 10, 15]
    windows = substitution_windows(sampled, 20)
    used = {f for w in windows for f in w}
    held_out = gallery_candidates(sampled, 20)
    assert held_out and not used & set(held_out)
    assert [w.start for w in windows] == sampled


def test_outside_share_counts_only_network_stages_as_inference() -> None:
    share = outside_share({"decode": (1.0, 1), "detect": (1.0, 1), "frame_network": (2.0, 1)})
    assert share == pytest.approx(0.5)
    assert outside_share({}) is None


# ------------------------------------------------------------------------------ end to end (mini FF++)

FRAMES = 2  # per video: enough for substitutions and a held-out gallery frame, cheap on 2 cores


def run_quality(root: Path | str, cache: Path | str, shard: str = "0/1", *, subset: str = "all",
                student: bool = True) -> None:
    """The runner as the CLI drives it: calibration rows + the random-weight student, offline evaluators.

    Also the entry point of the subprocess that the resume test kills.
    """
    from mfsbench.quality.card import card_for
    from mfsbench.quality.evaluators import build_evaluators
    from mfsbench.quality.ffpp import FFppTree
    from mfsbench.quality.protocol import load_protocol
    from mfsbench.quality.runner import QualityRunner, calibration_rows, zoo_row

    root = Path(root)
    evaluators = build_evaluators("offline")
    protocol = card_for(load_protocol("ffpp_v1", frames_per_video=FRAMES), evaluators)  # as the CLI does
    tree = FFppTree(root, root / "splits", protocol.compression)
    zoo = zoo_row("mobilefaceswap_224", "image", "random-weights:0", checkpoints=[], seed=0)
    rows = [*calibration_rows(), *([zoo] if student else [])]
    with QualityStore(cache) as store:
        QualityRunner(protocol=protocol, tree=tree, store=store, rows=rows,
                      evaluators=evaluators, subset=subset, shard=parse_shard(shard),
                      progress=False).run()


def numbers(cache: Path) -> tuple[list[tuple], dict[str, int]]:
    """Every row's final numbers (as rendered) and the store's row counts, timings aside."""
    from mfsbench.report.table2 import collect

    with QualityStore(cache) as store:
        (key,) = [k for (k,) in store.db.execute("SELECT key FROM meta WHERE key LIKE 'run:%'")]
        _, fingerprint, evalset = key.split(":", 2)
        _, rows = collect(store, fingerprint, evalset)
        counts = store.counts()
    counts.pop("timings")  # which row of a pair pays the shared decode depends on where a run stopped
    table = [(r.key, r.frames_ok, r.frames_skipped, r.id_top1_pct, r.id_top1_grouped_pct,
              r.target_retrieval_pct, r.id_cos, r.pose_err, r.fd, r.fd_n) for r in rows]
    return table, counts


@pytest.fixture(scope="module")
def mini_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mfsbench.quality.mini import build_mini_ffpp

    try:
        # 2 people (2 pairs x 4 rows = 8 work items, 1 pair a shard): the shards, the kill half-way and the
        # report's rows need no more, and each run costs half what 4 people did
        return build_mini_ffpp(tmp_path_factory.mktemp("ffpp"), people=2, frames=12)
    except RuntimeError as exc:  # registry unreachable: no real faces, no test (never fake data)
        pytest.skip(f"face photos unavailable: {exc}")


@pytest.fixture(scope="module")
def merged(mini_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run done as two shards and merged: the reference the killed-and-resumed run must equal."""
    folder = tmp_path_factory.mktemp("shards")
    shards = [folder / f"shard{i}.sqlite" for i in range(2)]
    for i, cache in enumerate(shards):
        run_quality(mini_tree, cache, f"{i}/2")
    merge(folder / "merged.sqlite", shards)
    merge(folder / "merged.sqlite", shards)  # merging twice changes nothing
    return folder / "merged.sqlite"


def _items_done(cache: Path) -> int:
    """Work items committed so far, read without taking the writer's lock (the run keeps writing)."""
    if not cache.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=0.1)
        try:
            query = "SELECT COUNT(*) FROM items WHERE row NOT LIKE '\\_\\_%' ESCAPE '\\'"
            return db.execute(query).fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:  # tables not created yet, or the file is being created
        return 0


@pytest.mark.slow
def test_a_sigkilled_run_resumes_to_the_sharded_numbers(mini_tree: Path, merged: Path,
                                                         tmp_path: Path) -> None:
    """Killed half-way and re-run, the unsharded run ends with the merged shards' numbers and rows."""
    cache = tmp_path / "killed.sqlite"
    code = f"from tests.test_quality_run import run_quality; run_quality({str(mini_tree)!r}, {str(cache)!r})"
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": path},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    expected_items = numbers(merged)[1]["items"]
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and child.poll() is None:
        done = _items_done(cache)
        if done >= 2:
            break
        time.sleep(0.02)
    assert child.poll() is None, f"the run ended before it could be killed: {child.stderr.read()!r}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    partial = numbers(cache)[1]["items"]
    assert 0 < partial < expected_items, "the kill must land half-way"
    run_quality(mini_tree, cache)
    (resumed, resumed_counts), (expected, expected_counts) = numbers(cache), numbers(merged)
    assert resumed_counts == expected_counts
    assert [r[:3] for r in resumed] == [r[:3] for r in expected]  # rows, frames evaluated and skipped
    for got, want in zip(resumed, expected, strict=True):  # two processes: equal up to float round-off
        assert got[3:] == pytest.approx(want[3:], rel=1e-6, abs=1e-9), got[0]


@pytest.mark.slow
def test_shards_hold_disjoint_work_and_the_merge_holds_all(mini_tree: Path, merged: Path) -> None:
    folder = merged.parent
    counts = [numbers(folder / f"shard{i}.sqlite")[1] for i in range(2)]
    total = numbers(merged)[1]
    assert counts[0]["frame_results"] + counts[1]["frame_results"] == total["frame_results"] > 0
    assert all(0 < c["frame_results"] < total["frame_results"] for c in counts)


@pytest.mark.slow
def test_report_renders_from_the_store_alone(merged: Path, tmp_path: Path) -> None:
    from mfsbench.report.table2 import to_records, write_reports

    with QualityStore(merged) as store:
        (key,) = [k for (k,) in store.db.execute("SELECT key FROM meta WHERE key LIKE 'run:%'")]
        _, fingerprint, evalset = key.split(":", 2)
        started = time.perf_counter()
        written, _warnings, header, rows = write_reports(store, tmp_path, fingerprint, evalset)
        seconds = time.perf_counter() - started
        again = write_reports(store, tmp_path / "again", fingerprint, evalset)[0]
    assert seconds < 5.0
    assert written[0].read_text() == again[0].read_text()
    md = written[0].read_text()
    assert "dlib_resnet128" in md and "landmark_pnp" in md and "fd_dlib128, not FID" in md
    assert "CosFace" not in md.split("Paper figures")[0] and "Hopenet" not in md.split("Paper figures")[0]
    assert header.fingerprint in md and "random-weights:0" in md and "95.98" in md
    by_key = {r.key: r for r in rows}
    assert by_key["identity_oracle"].id_top1_pct == 100.0
    floor = by_key["target_copy"]  # the JPEG re-encoded target: returns the target, with estimator noise
    assert floor.target_retrieval_pct == 100.0 and floor.id_top1_pct == 0.0
    assert floor.pose_err is not None and 0.0 < floor.pose_err < by_key["identity_oracle"].pose_err
    assert floor.fd is not None and floor.fd > 0.0
    assert "retrieval floor" in md and "target retrieved %" in md
    csv_lines = written[1].read_text().splitlines()
    assert len(csv_lines) == 1 + len(rows)
    records = to_records(header, rows)
    assert {r.model for r in records} == {"identity_oracle", "target_copy", "mobilefaceswap_224"}
    assert all(r.info["protocol_fingerprint"] == header.fingerprint for r in records)


def test_set_distance_is_computed_once_per_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-rendering reads the stored distance; new features recompute it; merge and counts ignore it."""
    from mfsbench.quality import fid
    from mfsbench.report.table2 import stored_set_distance

    calls = []
    real = fid.set_distance
    monkeypatch.setattr(fid, "set_distance", lambda a, b: calls.append(1) or real(a, b))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 1.0
    with QualityStore(tmp_path / "c.sqlite") as store:
        before = store.counts()
        first = stored_set_distance(store, a, b)
        assert stored_set_distance(store, a, b) == first == pytest.approx(real(a, b))
        assert len(calls) == 1
        changed = b.copy()
        changed[0, 0] += 1e-3
        assert stored_set_distance(store, a, changed) != first and len(calls) == 2
        assert store.counts() == before  # derived values are not part of the run's rows
    assert merge(tmp_path / "m.sqlite", [tmp_path / "c.sqlite"]) == before


def test_decode_order_puts_each_reverse_pair_next() -> None:
    from mfsbench.quality.ffpp import Pair
    from mfsbench.quality.runner import decode_order

    names = [("000", "003"), ("001", "002"), ("002", "001"), ("003", "000"), ("004", "005")]
    pairs = [Pair(*n) for n in names]
    assert decode_order(pairs) == [pairs[0], pairs[3], pairs[1], pairs[2], pairs[4]]
    assert decode_order([]) == []


def test_each_frame_is_decoded_once_per_run(mini_tree: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Detection and the swap read the same frames: the second read comes from memory, even with room
    for only a few frames (so the work order matters, not just the cache). The test split's two
    videos, both directions, calibration rows: the decode pattern of any run at a third of the cost."""
    import functools

    import cv2

    from mfsbench.quality import frames as frames_module
    from mfsbench.quality import runner as runner_module

    decoded: dict[tuple[str, int], int] = {}
    real = frames_module.read_frames

    def counting(path: Path, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index, frame in real(path, indices):
            decoded[(str(path), index)] = decoded.get((str(path), index), 0) + 1
            yield index, frame

    some_video = next((mini_tree / "original_sequences").rglob("*.mp4"))
    capture = cv2.VideoCapture(str(some_video))
    ok, frame = capture.read()
    capture.release()
    assert ok
    budget = 2 * 2 * FRAMES * frame.nbytes  # the sampled frames of one pair's two videos, twice over
    small = functools.partial(frames_module.DecodedFrames, budget)
    monkeypatch.setattr(runner_module, "DecodedFrames", small)
    monkeypatch.setattr(frames_module, "read_frames", counting)
    run_quality(mini_tree, tmp_path / "c.sqlite", subset="test", student=False)
    originals = {k: n for k, n in decoded.items() if "original_sequences" in k[0]}
    assert originals and max(originals.values()) == 1, {k: n for k, n in originals.items() if n > 1}


def test_a_schema_1_cache_is_migrated_in_place(tmp_path: Path) -> None:
    """Schema 2 adds the retrieved identity per frame; an older cache (e.g. reports/quality_cache.sqlite
    of an earlier make demo) gains the column instead of stopping the run."""
    old = tmp_path / "v1.sqlite"
    db = sqlite3.connect(old)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema', '1');"
        "CREATE TABLE frame_results (protocol TEXT, row TEXT, evalset TEXT, target TEXT, source TEXT, "
        "frame INTEGER, status TEXT NOT NULL, reason TEXT, top1 INTEGER, cos REAL, pose_err REAL, "
        "PRIMARY KEY (protocol, row, evalset, target, source, frame));"
        "INSERT INTO frame_results VALUES ('fp', 'r', 'set', '000', 's', 3, 'ok', NULL, 1, 0.5, 1.0);")
    db.commit()
    db.close()
    with QualityStore(old) as store:
        assert store.meta("schema") == 2
        (_t, _s, result), = store.frame_results("fp", "r", "set")
        assert result.top1 is True and result.top1_id is None
        _fill(store, "001")  # and it takes schema-2 rows
        assert store.counts()["frame_results"] == 3
    assert merge(tmp_path / "m.sqlite", [old])["frame_results"] == 3
