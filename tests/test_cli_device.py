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
def test_device_profile_says_where_the_time_goes(run_cli, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    result = run_cli("device", "--models", "test_mobilefaceswap", "--backends", "onnxruntime", "openvino",
                     "torch-eager", "--precision", "fp32", "--runs", "5", "--warmup", "1",
                     "--min-seconds", "0", "--profile", "--out", str(tmp_path))
    assert result.code == 0, result.err
    cells = {r.info["backend"]: r for r in read_records(tmp_path / "records.jsonl")}
    for backend, conv in (("onnxruntime", "Conv"), ("openvino", "Convolution")):
        profile = cells[backend].info["op_profile"]
        assert profile["runs"] == 5 and profile["total_ms"] > 0, profile
        by_type = dict(profile["by_op_type"])
        assert conv in by_type, by_type
        assert profile["total_ms"] == pytest.approx(sum(by_type.values()))
        shares = [ms for _op, ms in profile["by_op_type"]]
        assert shares == sorted(shares, reverse=True)
        _node, op, ms = profile["top_nodes"][0]
        assert 0 < ms <= by_type[op]
    assert "op_profile" not in cells["torch-eager"].info  # no profiler: nothing invented
    md = (tmp_path / "device_desktop.md").read_text()
    section = md.split("## Where the time goes")[1].split("## Notes")[0]
    assert "test_mobilefaceswap / onnxruntime / fp32" in section and "onnxruntime" in section
    assert "test_mobilefaceswap / openvino / fp32" in section and "PERF_COUNT" in section


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


def test_default_sweep_times_int8_where_an_int8_export_runs() -> None:
    from mfsbench.device.sweep import default_cells

    cells = default_cells(["torch-eager", "onnxruntime", "litert"])
    assert cells == [("torch-eager", "fp32"), ("onnxruntime", "fp32"), ("litert", "fp32"), ("litert", "int8")]
    # explicit precisions are a full grid: cells a backend cannot run become skipped records
    grid = default_cells(["onnxruntime"], ["fp32", "int8"])
    assert grid == [("onnxruntime", "fp32"), ("onnxruntime", "int8")]


@pytest.mark.cli
def test_benchmark_app_cell_lands_in_the_same_record(run_cli, tmp_path: Path) -> None:
    """OpenVINO's own tool as a sweep cell: parity first, its median under p50_ms, no invented stats."""
    from mfsbench.device.runtimes.benchmark_app import find_benchmark_app

    if find_benchmark_app() is None:
        pytest.skip("benchmark_app (openvino wheel) not installed")
    result = run_cli("device", "--models", "test_mobilefaceswap", "--backends", "benchmark_app",
                     "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--out", str(tmp_path))
    assert result.code == 0, result.err
    (record,) = read_records(tmp_path / "records.jsonl")
    assert record.status == "ok" and record.info["backend"] == "benchmark_app"
    assert record.metrics["max_abs_err"] <= 1e-4  # the IR was checked before the tool timed it
    assert record.metrics["p50_ms"] > 0 and record.metrics["runs"] >= 5
    assert record.info["runtime_info"]["inference_precision"] == "float32"  # as the tool prints it
    assert "p90_ms" not in record.metrics and "samples_ms" not in record.info


def _tiny_sweep(out: Path, runs: int = 3) -> tuple[str, ...]:
    return ("device", "--models", "test_mobilefaceswap", "--backends", "torch-eager", "onnxruntime",
            "--precision", "fp32", "--runs", str(runs), "--warmup", "1", "--min-seconds", "0",
            "--out", str(out))


@pytest.mark.cli
def test_interrupted_sweep_keeps_its_cells_and_resumes(run_cli, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    from mfsbench.device import sweep as device

    measured: list[str] = []
    real = device._measure_cell

    def interrupted_once(record: Record, spec, **kwargs) -> None:
        measured.append(kwargs["backend"])
        if len(measured) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the second cell
        real(record, spec, **kwargs)

    monkeypatch.setattr(device, "_measure_cell", interrupted_once)
    first = run_cli(*_tiny_sweep(tmp_path))
    assert first.code == 130 and "--resume" in first.err
    (kept,) = read_records(tmp_path / "records.jsonl")  # the finished cell was written at once
    assert kept.info["backend"] == "torch-eager" and kept.status == "ok"

    other = run_cli(*_tiny_sweep(tmp_path, runs=5), "--resume")
    assert other.code == 2 and "--runs 3" in other.err and "--runs 5" in other.err
    resumed = run_cli(*_tiny_sweep(tmp_path), "--resume")
    assert resumed.code == 0, resumed.err
    assert measured == ["torch-eager", "onnxruntime", "onnxruntime"]  # the kept cell is not re-timed
    records = read_records(tmp_path / "records.jsonl")
    assert [r.info["backend"] for r in records] == ["torch-eager", "onnxruntime"]
    assert len({r.run_id for r in records}) == 1 and all(r.status == "ok" for r in records)
    md = (tmp_path / "device_desktop.md").read_text()
    assert "| test_mobilefaceswap | torch-eager | fp32 |" in md
    assert "| test_mobilefaceswap | onnxruntime | fp32 |" in md

    again = run_cli(*_tiny_sweep(tmp_path), "--resume")
    assert again.code == 0 and "every cell is measured already" in again.err
    assert len(measured) == 3

    nothing = run_cli(*_tiny_sweep(tmp_path / "empty"), "--resume")
    assert nothing.code == 2 and "nothing to resume" in nothing.err
