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
                     "--peak-seconds", "0.2", "--out", str(tmp_path))
    assert result.code == 0, result.err
    records = read_records(tmp_path / "records.jsonl")
    cells = {(r.info["backend"], r.info["precision"]): r for r in records}
    ok = cells[("onnxruntime", "fp32")]
    assert ok.status == "ok" and ok.metrics["max_abs_err"] <= 1e-4
    assert ok.metrics["runs"] >= 3 and ok.metrics["p50_ms"] > 0 and len(ok.info["samples_ms"]) >= 3
    assert ok.info["artifact_sha256"] and "aligned crop" in ok.info["parity_inputs"]
    assert ok.info["executed_precision"] == "fp32" and ok.info["weights"] == "random, seed 0"
    assert ok.info["parity_runtime"] == "onnxruntime (the timed session)"
    assert ok.metrics["gmacs"] > 0 and ok.info["macs_executed"] == round(ok.metrics["gmacs"] * 1e9)
    assert cells[("torch-eager", "fp32")].status == "ok"
    skipped = cells[("onnxruntime", "fp16")]  # no fp16 arithmetic on ORT's CPU provider: a reason
    assert skipped.status == "skipped" and "fp16" in (skipped.error or "")
    md = (tmp_path / "device_desktop.md").read_text()
    assert "| test_mobilefaceswap | 64 | onnxruntime | fp32 | fp32 |" in md
    assert (tmp_path / "device_desktop.csv").read_text().startswith("run_id,model,size,backend,precision")
    again = tmp_path / "again"
    assert run_cli("report", "--records", str(tmp_path / "records.jsonl"), "--out", str(again)).code == 0
    assert (again / "device_desktop.md").read_text() == md


@pytest.mark.cli
def test_device_profile_says_where_the_time_goes(run_cli, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    result = run_cli("device", "--models", "test_mobilefaceswap", "--backends", "onnxruntime", "openvino",
                     "torch-eager", "--precision", "fp32", "--runs", "5", "--warmup", "1",
                     "--min-seconds", "0", "--peak-seconds", "0.2", "--profile", "--out", str(tmp_path))
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
        (("--backends", "openvino-bf16"), "--backends openvino --precision bf16"),
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


def test_speed_ratio_pairs_cells_of_the_shown_run_and_flags_unstable_ones() -> None:
    same = [_cell("mobilefaceswap_224", 10.0), _cell("simswap_224", 1000.0)]
    assert device_report.speed_ratios(same) == [("onnxruntime", "fp32", 100.0, True)]
    # a report shows the newest run only: a student of r1 never pairs with a teacher of r2
    apart = [_cell("mobilefaceswap_224", 10.0, "r1"), _cell("simswap_224", 1000.0, "r2")]
    assert device_report.speed_ratios(apart) == []
    shaky = [_cell("mobilefaceswap_224", 10.0), _cell("simswap_224", 1000.0)]
    shaky[0].metrics["unstable"] = 1.0
    assert device_report.speed_ratios(shaky) == [("onnxruntime", "fp32", 100.0, False)]
    assert "UNSTABLE" in device_report.render_markdown(shaky)


def test_report_shows_the_newest_run_only_with_run_and_size_columns() -> None:
    old = _cell("mobilefaceswap_224", 10.0, "r1")
    old.info["size"] = 224
    new = _cell("simswap_224", 700.0, "r2")
    new.info["size"] = 224
    md = device_report.render_markdown([old, new])
    assert "| r2 | simswap_224 | 224 | onnxruntime | fp32 |" in md
    assert "| r1 |" not in md and "Run r2" in md
    assert device_report.latest_cells([old, new], run_id="r1") == [old]


@pytest.mark.cli
def test_benchmark_app_cell_lands_in_the_same_record(run_cli, tmp_path: Path) -> None:
    """OpenVINO's own tool as a sweep cell: parity first, its median under p50_ms, no invented stats."""
    from mfsbench.device.runtimes.benchmark_app import find_benchmark_app

    if find_benchmark_app() is None:
        pytest.skip("benchmark_app (openvino wheel) not installed")
    result = run_cli("device", "--models", "test_mobilefaceswap", "--backends", "benchmark_app",
                     "--precision", "fp32", "--runs", "5", "--warmup", "1", "--min-seconds", "0",
                     "--peak-seconds", "0.2", "--out", str(tmp_path))
    assert result.code == 0, result.err
    (record,) = read_records(tmp_path / "records.jsonl")
    assert record.status == "ok" and record.info["backend"] == "benchmark_app"
    assert record.metrics["max_abs_err"] <= 1e-4  # the IR was checked before the tool timed it
    assert record.metrics["p50_ms"] > 0 and record.metrics["runs"] >= 5
    assert record.info["executed_precision"] == "fp32"  # read back from the compiled IR
    assert "OpenVINO's Python API" in record.info["runtime_info"]["parity_note"]
    assert "p90_ms" not in record.metrics and "samples_ms" not in record.info


def _tiny_sweep(out: Path, runs: int = 3) -> tuple[str, ...]:
    return ("device", "--models", "test_mobilefaceswap", "--backends", "torch-eager", "onnxruntime",
            "--precision", "fp32", "--runs", str(runs), "--warmup", "1", "--min-seconds", "0",
            "--peak-seconds", "0.2", "--out", str(out))


@pytest.mark.cli
def test_interrupted_sweep_keeps_its_cells_and_resumes(run_cli, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    from mfsbench.device import sweep as device

    measured: list[str] = []
    real = device._measure_cell

    def interrupted_once(record: Record, model, **kwargs) -> None:
        measured.append(kwargs["backend"])
        if len(measured) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the second cell
        real(record, model, **kwargs)

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
    assert "| test_mobilefaceswap | 64 | torch-eager | fp32 | fp32 |" in md
    assert "| test_mobilefaceswap | 64 | onnxruntime | fp32 | fp32 |" in md

    again = run_cli(*_tiny_sweep(tmp_path), "--resume")
    assert again.code == 0 and "every cell is measured already" in again.err
    assert len(measured) == 3

    nothing = run_cli(*_tiny_sweep(tmp_path / "empty"), "--resume")
    assert nothing.code == 2 and "nothing to resume" in nothing.err
