"""Every record as one pandas table: flat columns, honest types, CSV/Parquet that read back the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mfsbench.records import Record, append_records
from mfsbench.results import read_results, records_frame


def _records() -> list[Record]:
    device = Record("device", "mobilefaceswap_224", stage="frame", metrics={"p50_ms": 9.1, "efficiency": 0.4},
                    input_shapes={"target": [1, 3, 224, 224]},
                    info={"runtime": "litert", "op_precisions": {"conv": "fp32"}, "threads": 2,
                          "weights": "random, seed 0", "isa": ["avx2", "fma"]},
                    run_id="r1", created="2026-12-04T00:00:00+00:00")
    swap = Record("swap", "mobilefaceswap_224", mode="video", metrics={"fps": 25.5, "frames": 120},
                  info={"threads": "auto", "native": True, "video": {"width": 641, "height": 451}},
                  run_id="r2", created="2026-12-04T00:00:01+00:00")
    failed = Record("quality", "simswap_224", status="error", error="no FF++ root", run_id="r2")
    return [device, swap, failed]


def test_nested_fields_become_dotted_columns_in_a_fixed_order() -> None:
    frame = records_frame(_records())
    assert list(frame.columns[:10]) == ["run_id", "created", "command", "model", "stage", "mode", "status",
                                        "error", "convention", "schema"]
    assert frame.loc[0, "input_shapes.target"] == "[1, 3, 224, 224]"  # lists: JSON text
    assert frame.loc[0, "info.op_precisions.conv"] == "fp32"
    assert frame.loc[1, "info.video.width"] == 641.0
    assert json.loads(frame.loc[0, "info.isa"]) == ["avx2", "fma"]
    nested = list(frame.columns[10:])
    prefixes = [c.split(".", 1)[0] for c in nested]
    assert prefixes == sorted(prefixes, key=["input_shapes", "metrics", "info", "env"].index)


def test_types_are_what_the_values_are_and_missing_is_null_not_zero() -> None:
    frame = records_frame(_records())
    assert frame["metrics.p50_ms"].dtype == "float64"
    assert pd.isna(frame.loc[1, "metrics.p50_ms"]) and pd.isna(frame.loc[2, "metrics.fps"])
    assert frame["info.native"].dtype == "boolean" and pd.isna(frame.loc[0, "info.native"])
    assert frame["status"].tolist() == ["ok", "ok", "error"]
    assert pd.isna(frame.loc[0, "error"]) and frame.loc[2, "error"] == "no FF++ root"
    # one key filled with a number by one command and text by another: JSON text, both kept
    assert pd.isna(frame.loc[2, "info.threads"])
    assert frame.loc[0, "info.threads"] == "2" and frame.loc[1, "info.threads"] == '"auto"'


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_writes_a_file_that_reads_back_the_same(tmp_path: Path, run_cli, suffix: str) -> None:
    store = tmp_path / "records.jsonl"
    append_records(store, _records())
    out = tmp_path / f"table{suffix}"
    done = run_cli("results", "--records", str(store), "--commands", "device,swap", "--out", str(out))
    assert done.code == 0, done.err
    back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert back["command"].tolist() == ["device", "swap"]
    assert back["metrics.p50_ms"].iloc[0] == pytest.approx(9.1)
    assert back["source"].tolist() == [str(store)] * 2
    assert back["info.video.height"].iloc[1] == 451


def test_two_stores_are_one_table_with_their_source(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    append_records(first, _records()[:1])
    append_records(second, _records()[1:])
    frame = read_results([first, second])
    assert frame["source"].tolist() == [str(first), str(second), str(second)]
    assert frame["run_id"].tolist() == ["r1", "r2", "r2"]


@pytest.mark.parametrize(("args", "message"), [
    (["--models", "nope"], "--models nope: not in the store(s)"),
    (["--run-id", "r9"], "--run-id r9: not in the store(s)"),
    (["--out", "table.xlsx"], "write a .csv or a .parquet file"),
])
def test_bad_requests_are_one_line_and_exit_2(tmp_path: Path, run_cli, args: list[str], message: str) -> None:
    store = tmp_path / "records.jsonl"
    append_records(store, _records())
    done = run_cli("results", "--records", str(store), *[str(tmp_path / a) if a.endswith(".xlsx") else a
                                                         for a in args])
    assert done.code == 2
    assert message in done.err and "Traceback" not in done.err
    assert not (tmp_path / "table.xlsx").exists()


def test_missing_store_names_it(tmp_path: Path, run_cli) -> None:
    done = run_cli("results", "--records", str(tmp_path / "none.jsonl"))
    assert done.code == 2 and "none.jsonl" in done.err


@pytest.mark.cli
def test_console_script_prints_the_summary(tmp_path: Path) -> None:
    store = tmp_path / "records.jsonl"
    append_records(store, _records())
    script = str(Path(sys.executable).with_name("mfsbench"))
    done = subprocess.run([script, "results", "--records", str(store), "--status", "error"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "simswap_224" in done.stdout and "mobilefaceswap_224" not in done.stdout
    assert "1 record(s)" in done.stdout
