"""End-to-end `mfsbench device` on the tiny student: export, parity, timing, records, report.

Every fresh sweep pays for this machine's peaks, the model's MAC count and its exports before any
cell is timed, so the sweeps here are one sweep grown in stages that the tests share (module
fixtures, each stage run once, by the first test that needs it, about one third of a sweep each):
interrupted in its second cell and refused with other options; resumed; resumed again with more
runtimes. A resume adds cells under the same
run id with the peaks stored in the run, which is exactly what the resume tests check.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mfsbench.records import Record, read_records
from mfsbench.report import device as device_report
from tests.conftest import CliResult, cli_in_process
from tests.small_peaks import use_small_peaks

#: the first stage's runtimes (the interrupted and resumed sweep); later stages add more
FIRST = ("torch-eager", "onnxruntime")


def _sweep(out: Path, *, backends: tuple[str, ...] = FIRST, runs: int = 5) -> tuple[str, ...]:
    """The shared sweep's command: fp16 gives skipped cells with a reason, --profile per-operator
    profiles where a runtime has a profiler; runs 5 is what the profile and benchmark_app checks need."""
    return ("device", "--models", "test_mobilefaceswap", "--backends", *backends, "--precision", "fp32",
            "fp16", "--runs", str(runs), "--warmup", "1", "--min-seconds", "0", "--peak-seconds", "0.2",
            "--profile", "--out", str(out))


@dataclass
class Stages:
    """What each stage of the shared sweep returned and left in its folder."""

    out: Path
    measured: list[str] = field(default_factory=list)  # the runtime of every cell timed, in order
    results: dict[str, CliResult] = field(default_factory=dict)
    kept: list[Record] = field(default_factory=list)  # the store after the interruption
    measured_at: dict[str, int] = field(default_factory=dict)  # len(measured) after each stage


def _interrupting(stages: Stages) -> Callable[..., None]:
    """``_measure_cell`` that notes each cell's runtime and is interrupted (Ctrl-C) in the second."""
    from mfsbench.device import sweep as device

    real = device._measure_cell

    def interrupted_once(record: Record, model, **kwargs) -> None:
        stages.measured.append(kwargs["backend"])
        if len(stages.measured) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the second cell
        real(record, model, **kwargs)

    return interrupted_once


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Stages:
    """Stage 1: the sweep interrupted in its second cell, then a resume with other options, refused."""
    pytest.importorskip("onnxruntime")
    from mfsbench.device import sweep as device

    stages = Stages(tmp_path_factory.mktemp("device-sweep"))
    with pytest.MonkeyPatch.context() as patch:
        use_small_peaks(patch)  # the peaks the later stages resume with, on a small product
        patch.setattr(device, "_measure_cell", _interrupting(stages))
        stages.results["first"] = cli_in_process(*_sweep(stages.out))
        store = stages.out / "records.jsonl"
        stages.kept = read_records(store) if store.is_file() else []
        stages.results["other"] = cli_in_process(*_sweep(stages.out, runs=3), "--resume")
    return stages


@pytest.fixture(scope="module")
def resumed(interrupted: Stages) -> Stages:
    """Stage 2 (same folder): the resume that finishes the sweep, a resume with nothing left, and a
    resume of an empty folder. A stage of its own so that no one test pays for both runs."""
    from mfsbench.device import sweep as device

    stages = interrupted
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(device, "_measure_cell", _interrupting(stages))
        stages.results["resumed"] = cli_in_process(*_sweep(stages.out), "--resume")
        stages.measured_at["resumed"] = len(stages.measured)
        stages.results["again"] = cli_in_process(*_sweep(stages.out), "--resume")
        stages.measured_at["again"] = len(stages.measured)
        stages.results["nothing"] = cli_in_process(*_sweep(stages.out / "empty"), "--resume")
    return stages


@pytest.fixture(scope="module")
def extended(resumed: Stages, tmp_path_factory: pytest.TempPathFactory) -> Stages:
    """Stage 3: a copy of the finished sweep resumed with OpenVINO and (when installed) OpenVINO's
    benchmark_app added: only their cells are timed, under the same run and peaks."""
    pytest.importorskip("openvino")
    from mfsbench.device import sweep as device
    from mfsbench.device.runtimes.benchmark_app import find_benchmark_app

    stages = Stages(tmp_path_factory.mktemp("device-sweep-more") / "out")
    shutil.copytree(resumed.out, stages.out, ignore=shutil.ignore_patterns("empty"))
    more = ("openvino", "benchmark_app") if find_benchmark_app() is not None else ("openvino",)
    real = device._measure_cell

    def counted(record: Record, model, **kwargs) -> None:
        stages.measured.append(kwargs["backend"])
        real(record, model, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(device, "_measure_cell", counted)
        stages.results["more"] = cli_in_process(*_sweep(stages.out, backends=(*FIRST, *more)), "--resume")
    return stages


@pytest.mark.cli
def test_interrupted_sweep_keeps_its_cells(interrupted: Stages) -> None:
    first, other = interrupted.results["first"], interrupted.results["other"]
    assert first.code == 130 and "--resume" in first.err
    # the finished cells (torch-eager's: fp32 timed, fp16 skipped) were written at once
    assert [(r.info["backend"], r.status) for r in interrupted.kept] == [("torch-eager", "ok"),
                                                                         ("torch-eager", "skipped")]
    assert other.code == 2 and "--runs 5" in other.err and "--runs 3" in other.err


@pytest.mark.cli
def test_interrupted_sweep_resumes(resumed: Stages) -> None:
    resumed_run = resumed.results["resumed"]
    assert resumed_run.code == 0, resumed_run.err
    # the kept cell is not re-timed; the interrupted one is
    assert resumed.measured[:resumed.measured_at["resumed"]] == ["torch-eager", "onnxruntime", "onnxruntime"]
    records = read_records(resumed.out / "records.jsonl")
    assert [(r.info["backend"], r.info["precision"]) for r in records] == [
        ("torch-eager", "fp32"), ("torch-eager", "fp16"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16")]
    assert len({r.run_id for r in records}) == 1
    assert [r.status for r in records] == ["ok", "skipped", "ok", "skipped"]
    md = (resumed.out / "device_desktop.md").read_text()
    assert "| test_mobilefaceswap | 64 | torch-eager | fp32 | fp32 |" in md
    assert "| test_mobilefaceswap | 64 | onnxruntime | fp32 | fp32 |" in md

    again = resumed.results["again"]
    assert again.code == 0 and "every cell is measured already" in again.err
    assert resumed.measured_at["again"] == 3

    nothing = resumed.results["nothing"]
    assert nothing.code == 2 and "nothing to resume" in nothing.err


@pytest.mark.cli
def test_device_sweep_on_tiny_student(resumed: Stages, run_cli, tmp_path: Path) -> None:
    assert resumed.results["resumed"].code == 0, resumed.results["resumed"].err
    records = read_records(resumed.out / "records.jsonl")
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
    md = (resumed.out / "device_desktop.md").read_text()
    assert "| test_mobilefaceswap | 64 | onnxruntime | fp32 | fp32 |" in md
    assert (resumed.out / "device_desktop.csv").read_text().startswith("run_id,model,size,backend,precision")
    again = tmp_path / "again"
    assert run_cli("report", "--records", str(resumed.out / "records.jsonl"), "--out", str(again)).code == 0
    assert (again / "device_desktop.md").read_text() == md


@pytest.mark.cli
def test_device_profile_says_where_the_time_goes(extended: Stages) -> None:
    result = extended.results["more"]
    assert result.code == 0, result.err
    records = read_records(extended.out / "records.jsonl")
    assert len({r.run_id for r in records}) == 1  # the added cells joined the run
    assert extended.measured[0] == "openvino"  # no cell of the copied run was timed again
    cells = {r.info["backend"]: r for r in records if r.info["precision"] == "fp32"}
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
    md = (extended.out / "device_desktop.md").read_text()
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
def test_benchmark_app_cell_lands_in_the_same_record(extended: Stages) -> None:
    """OpenVINO's own tool as a sweep cell: parity first, its median under p50_ms, no invented stats."""
    from mfsbench.device.runtimes.benchmark_app import find_benchmark_app

    if find_benchmark_app() is None:
        pytest.skip("benchmark_app (openvino wheel) not installed")
    assert extended.results["more"].code == 0, extended.results["more"].err
    records = read_records(extended.out / "records.jsonl")
    (record,) = [r for r in records if r.info["backend"] == "benchmark_app" and r.info["precision"] == "fp32"]
    assert record.status == "ok" and record.info["backend"] == "benchmark_app"
    assert record.metrics["max_abs_err"] <= 1e-4  # the IR was checked before the tool timed it
    assert record.metrics["p50_ms"] > 0 and record.metrics["runs"] >= 5
    assert record.info["executed_precision"] == "fp32"  # read back from the compiled IR
    assert "OpenVINO's Python API" in record.info["runtime_info"]["parity_note"]
    assert "p90_ms" not in record.metrics and "samples_ms" not in record.info
