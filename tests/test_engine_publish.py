"""Published unit files and the local engine: atomic, exact, idempotent (no Ray needed).

Why: across nodes the only shared state is one immutable file per unit; the driver's resume and
the no-double-counting guarantee rest on these properties, so they are checked without a cluster.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from mfsbench.engine import KILL_ONCE_ENV, get_engine, maybe_kill_self, worker_memo
from mfsbench.engine.publish import ResultFolder, decode_rows, encode_rows
from mfsbench.errors import BadInputError
from mfsbench.quality.store import FrameResult, QualityStore, encode

pytest.importorskip("pyarrow")

ROWS = [("meta", ("run:x", '{"a": 1}')),
        ("outputs", ("p", "r", "e", "t", "s", 3, "kind", encode(np.arange(3.0)))),
        ("frame_results", ("p", "r", "e", "t", "s", 0, "ok", None, 1, 0.1 + 0.2, float("nan"), "s"))]


def test_rows_round_trip_exactly() -> None:
    back = decode_rows(encode_rows(ROWS))
    assert [t for t, _ in back] == [t for t, _ in ROWS]
    assert back[1][1][-1] == ROWS[1][1][-1]  # bytes come back as the same bytes
    assert back[2][1][9] == 0.1 + 0.2  # every bit of a float
    assert math.isnan(back[2][1][10]) and back[2][1][7] is None


@pytest.mark.parametrize("scheme", ["", "file://", "memory://"])
def test_folder_publishes_atomically_and_lists_only_units(tmp_path: Path, scheme: str) -> None:
    if scheme == "memory://":
        pytest.importorskip("fsspec")
        url = f"memory://mfsbench-test-{os.getpid()}/units"
    else:
        url = f"{scheme}{tmp_path / 'units'}"
    folder = ResultFolder(url)
    assert folder.names() == set()
    folder.publish("ab" * 20, ROWS, {"command": "test"})
    folder.publish("ab" * 20, ROWS, {"command": "test"})  # a retried unit: same name, one file
    if scheme != "memory://":
        (tmp_path / "units" / f"{'cd' * 20}.parquet.tmp123").write_bytes(b"half a file")  # killed writer
    assert folder.names() == {"ab" * 20}
    rows, meta = folder.read("ab" * 20)
    assert meta == {"command": "test", "unit": "ab" * 20}
    assert [t for t, _ in rows] == [t for t, _ in ROWS]
    with pytest.raises(ValueError, match="fingerprint"):
        folder.publish("../escape", ROWS, {})


def _item(store: QualityStore, target: str, source: str, row: str) -> None:
    store.put_video("p", target, "ok", reason=None, n_frames=3, stamp="s")
    store.put_output("p", "__target__", "ev", target=target, source="", frame=0, kind="features",
                     value=np.ones(2))
    store.put_output("p", row, "ev", target=target, source=source, frame=0, kind="features",
                     value=np.zeros(2))
    store.put_item("p", row, "E", target=target, source=source, status="ok", reason=None,
                   results=[FrameResult(0, "ok", None, True, 0.5, 1.0, source)], timings={"swap": (0.1, 1)})


def test_unit_rows_rebuild_the_items_in_another_cache(tmp_path: Path) -> None:
    with QualityStore(tmp_path / "node.sqlite") as node:
        node.put_meta("run:p:E", {"protocol_id": "x"})
        node.put_row("p", "r1", "E", 0, {"label": "r1"})
        node.put_row("p", "r2", "E", 1, {"label": "r2"})
        _item(node, "a", "b", "r1")
        _item(node, "a", "b", "r2")
        _item(node, "b", "a", "r1")
        units = [node.unit_rows("p", "E", r, t, s) for t, s, r in (("a", "b", "r1"), ("a", "b", "r2"),
                                                                   ("b", "a", "r1"))]
        want = node.counts()
    assert not any(t == "timings" and v[1] == "r2" for t, v in units[0])  # another item's rows stay out
    with QualityStore(tmp_path / "driver.sqlite") as driver:
        added = [driver.import_rows(decode_rows(encode_rows(u))) for u in units]
        assert driver.import_rows(units[0]) == 0  # published twice: counted once
        assert driver.counts() == want
        assert added[0] > added[1] > 0  # the second unit of a pair adds only its own item
        assert driver.frame_results("p", "r1", "E")[0][2].cos == 0.5
        with pytest.raises(BadInputError, match="not a quality cache table"):
            driver.import_rows([("users", ("x",))])


def test_local_engine_runs_each_unit_once_and_memo_builds_once() -> None:
    built: list[int] = []
    seen: list[tuple[int, int]] = []

    def task(unit: int) -> int:
        model = worker_memo(("test-memo", os.getpid()), lambda: built.append(1) or 10)
        return unit * model

    engine = get_engine("local")
    engine.run(task, [1, 2, 3], lambda u, r: seen.append((u, r)))
    engine.close()
    assert seen == [(1, 10), (2, 20), (3, 30)] and built == [1]
    with pytest.raises(BadInputError, match="--engine ray"):
        get_engine("local", address="127.0.0.1:6379")


def test_kill_hook_is_inert_once_its_marker_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "killed"
    marker.write_text("1")
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    maybe_kill_self()  # the marker says the kill already happened: this process lives on
    monkeypatch.delenv(KILL_ONCE_ENV)
    maybe_kill_self()


def test_ray_engine_without_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mfsbench.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as without the extra
    wanted = r"--engine ray needs the Python package 'ray'.*mfsbench\[ray\]"
    with pytest.raises(MissingDependencyError, match=wanted):
        get_engine("ray")
