"""End-to-end `mfsbench device` on the tiny student: export, parity, timing, records, report."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfsbench.records import Record, read_records
from mfsbench.report import device as device_report


@pytest.mark.cli
def test_device_sweep_on_tiny_student(run_cli, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    result = run_cli("device", "--models", "test_mobilefaceswap", "--backends", "torch-eager", "onnxruntime",
                     "--precision", "fp32", "fp16", "--runs", "3", "--warmup", "1", "--min-seconds", "0",
                     "--out", str(tmp_path))
    assert result.code == 0, result.err
    records = read_records(tmp_path / "records.jsonl")
    cells = {(r.info["backend"], r.info["precision"]): r for r in records}
    ok = cells[("onnxruntime", "fp32")]
    assert ok.status == "ok" and ok.metrics["max_abs_err"] <= 1e-4
    assert ok.metrics["runs"] >= 3 and ok.metrics["p50_ms"] > 0 and len(ok.info["samples_ms"]) >= 3
    assert ok.info["artifact_sha256"] and "aligned crop" in ok.info["parity_inputs"]
    assert cells[("torch-eager", "fp32")].status == "ok"
    assert cells[("onnxruntime", "fp16")].status == "skipped"  # no fp16 export for that runtime
    md = (tmp_path / "device_desktop.md").read_text()
    assert "| test_mobilefaceswap | onnxruntime | fp32 |" in md
    assert (tmp_path / "device_desktop.csv").read_text().startswith("model,backend,precision")
    again = tmp_path / "again"
    assert run_cli("report", "--records", str(tmp_path / "records.jsonl"), "--out", str(again)).code == 0
    assert (again / "device_desktop.md").read_text() == md


@pytest.mark.cli
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--backends", "tensorrt"), "unknown backend 'tensorrt'"),
        (("--precision", "int4"), "unknown precision 'int4'"),
        (("--models", "arcface_irse101"), "has no frame stage"),
    ],
)
def test_device_bad_input(run_cli, tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    result = run_cli("device", *args, "--out", str(tmp_path))
    assert result.code == 2 and needle in result.err
    assert len(result.err.strip().splitlines()) == 1


def _cell(model: str, p50: float, run_id: str = "r1") -> Record:
    return Record("device", model, stage="frame", mode="video", metrics={"p50_ms": p50},
                  info={"backend": "onnxruntime", "precision": "fp32"}, run_id=run_id)


def test_speed_ratio_pairs_cells_of_the_same_run() -> None:
    same = [_cell("mobilefaceswap_224", 10.0), _cell("simswap_224", 1000.0)]
    assert device_report.speed_ratios(same) == [("onnxruntime", "fp32", 100.0)]
    apart = [_cell("mobilefaceswap_224", 10.0, "r1"), _cell("simswap_224", 1000.0, "r2")]
    assert device_report.speed_ratios(apart) == []
