"""The device axis and its cells: what a record says is what ran (audit A1, A4–A7, A10; E2).

The cell process is exercised in-process here (``mfsbench.device.cell.measure``) with a fake runtime
whose behaviour each test chooses, so the rules are checked without depending on what a real
runtime does on this CPU; ``test_cli_device.py`` runs the real ones end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mfsbench.device import axis, cell
from mfsbench.device.runtimes.base import SimplePrepared, TensorInfo

# --- the axis --------------------------------------------------------------------------------------


def test_bf16_on_a_cpu_without_bf16_is_a_skip_with_the_reason() -> None:
    plan = axis.plan_for("openvino", "bf16")
    assert isinstance(plan, axis.CellPlan) and plan.fallback == "skip"
    reason = plan.native_reason(["avx2", "fma"])
    assert reason is not None and "avx512_bf16" in reason
    assert plan.native_reason(["avx2", "avx512_bf16"]) is None


def test_int8_without_dot_products_runs_labelled_not_native() -> None:
    plan = axis.plan_for("onnxruntime", "int8")
    assert isinstance(plan, axis.CellPlan) and plan.fallback == "label" and plan.compute == "int8"
    assert "avx512_vnni" in (plan.native_reason(["avx2"]) or "")
    assert plan.native_reason(["avx2", "avx_vnni"]) is None


def test_weight_only_fp16_is_its_own_precision_and_computes_f32() -> None:
    for runtime in ("litert", "openvino"):
        plan = axis.plan_for(runtime, "fp16-weights")
        assert isinstance(plan, axis.CellPlan)
        assert (plan.export_precision, plan.compute) == ("fp16", "fp32")
    assert isinstance(axis.plan_for("litert", "fp16"), str)  # no fp16 arithmetic there: a reason


def test_unknown_pairs_say_why_and_a_full_grid_is_kept() -> None:
    assert "bf16" in str(axis.plan_for("onnxruntime", "bf16"))
    assert axis.sweep_cells(["onnxruntime"], ["fp32", "bf16"]) == [("onnxruntime", "fp32"),
                                                                    ("onnxruntime", "bf16")]
    defaults = axis.sweep_cells(["torch-eager", "openvino"])
    assert defaults == [("torch-eager", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"),
                        ("openvino", "int8")]


def test_majority_precision_and_type_names() -> None:
    assert axis.majority_precision({"int8": 30, "fp32": 2}) == "int8"
    assert axis.majority_precision({"fp32": 2, "bf16": 2}) == "fp32"  # a tie is read as the wider
    assert axis.majority_precision({}) == "unknown"
    assert [axis.axis_precision(t) for t in ("f32", "BF16", "u8", "tensor(float16)")] == \
        ["fp32", "bf16", "int8", "fp16"]


# --- the cell process ------------------------------------------------------------------------------


class FakeRuntime:
    """A runtime whose outputs and read-back a test sets; it logs every call in order."""

    name = "onnxruntime"
    package = "numpy"
    module = "numpy"
    artifact = "onnx"

    def __init__(self, log: list[str], *, error: float = 0.0, executed: str | None = "fp32") -> None:
        self.log, self.error, self.executed = log, error, executed

    def prepare(self, artifact_path: Any, threads: int) -> SimplePrepared:
        self.log.append("prepare")

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            self.log.append("run")
            return [np.clip(inputs["target"] * 0.5 + self.error, 0, 1)]

        info: dict[str, Any] = {"threads": threads}
        if self.executed is not None:
            info.update(executed_precision=self.executed, op_precisions={self.executed: 3},
                        precision_source="fake graph")
        return SimplePrepared([TensorInfo("target", (1, 3, 4, 4))], run, info)


def _job(tmp_path: Path, compute: str = "fp32", samples: int = 3) -> cell.CellJob:
    rng = np.random.default_rng(0)
    inputs = [(rng.random((3, 4, 4), dtype=np.float32),) for _ in range(samples)]
    refs = [[s[0][None] * 0.5] for s in inputs]
    data = tmp_path / "parity.npz"
    cell.write_parity_data(data, inputs, refs)
    return cell.CellJob(runtime="onnxruntime", compute=compute, tolerance=compute, artifact="x.onnx",
                        torch_stage=None, data=str(data), input_names=["target"], output_names=["out"],
                        samples=samples, threads=1, warmup=1, runs=4, min_seconds=0.0, max_seconds=5.0,
                        format="onnx")


def _fake(monkeypatch: pytest.MonkeyPatch, runtime: FakeRuntime) -> list[tuple[str, str]]:
    asked: list[tuple[str, str]] = []

    def get_runtime(name: str, compute: str = "fp32") -> FakeRuntime:
        asked.append((name, compute))
        return runtime

    monkeypatch.setattr("mfsbench.device.runtimes.get_runtime", get_runtime)
    return asked


def test_cell_checks_parity_through_the_session_it_times_cold_first(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    asked = _fake(monkeypatch, FakeRuntime(log))
    outcome = cell.measure(_job(tmp_path, "fp32"))
    assert outcome.status == "ok", outcome.error
    assert asked == [("onnxruntime", "fp32")]  # the runtime is built for the cell's precision
    # one prepare, before any run: init and the first run are cold; parity (3 samples) precedes
    # the warm-up (1) and the timed runs (>= 4), all through that one prepared session
    assert log[0] == "prepare" and log.count("prepare") == 1
    assert log.count("run") >= 3 + 1 + 4
    assert outcome.metrics["max_abs_err"] == 0.0 and outcome.parity["samples"] == 3
    assert outcome.parity["runtime"] == "onnxruntime (the timed session)"
    for key in ("init_ms", "first_run_ms", "import_ms", "p50_ms", "runs"):
        assert outcome.metrics[key] >= 0, key
    assert len(outcome.samples_ms) == outcome.metrics["runs"]


def test_cell_outside_tolerance_is_never_timed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    _fake(monkeypatch, FakeRuntime(log, error=1e-3))
    outcome = cell.measure(_job(tmp_path, "fp32"))
    assert outcome.status == "error" and "not timed" in (outcome.error or "")
    assert outcome.metrics["max_abs_err"] == pytest.approx(1e-3, rel=1e-3)
    assert "p50_ms" not in outcome.metrics and log.count("run") == 3  # parity only


def test_a_runtime_that_ran_another_precision_is_an_error_naming_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(monkeypatch, FakeRuntime([], executed="fp32"))
    outcome = cell.measure(_job(tmp_path, "bf16"))  # asked bf16, the runtime says its ops ran f32
    assert outcome.status == "error"
    assert "asked for bf16" in (outcome.error or "") and "ran fp32" in (outcome.error or "")
    assert "p50_ms" not in outcome.metrics


def test_a_runtime_that_reports_nothing_is_not_believed(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(monkeypatch, FakeRuntime([], executed=None))
    outcome = cell.measure(_job(tmp_path, "fp32"))
    assert outcome.status == "error" and "did not report what it executed" in (outcome.error or "")


def test_bf16_is_judged_by_psnr_not_by_the_fp32_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # max |err| 2e-4 fails fp32's 1e-4 but is far above bf16's 40 dB
    _fake(monkeypatch, FakeRuntime([], error=2e-4, executed="bf16"))
    outcome = cell.measure(_job(tmp_path, "bf16"))
    assert outcome.status == "ok", outcome.error
    assert outcome.metrics["max_abs_err"] > 1e-4 and outcome.metrics["psnr_db"] > 40


def test_cell_runs_in_its_own_process_with_its_own_peak_rss(tmp_path: Path) -> None:
    """A4: a cell's peak RSS is that cell process's, not the sweep's high-water mark.

    This test process first touches 1.5 GB; a cell of a tiny ONNX model must report far less (the
    old harness reported the sweep process's lifetime peak, which includes this).
    """
    pytest.importorskip("onnxruntime")
    import torch

    from mfsbench.export.onnx import OnnxExporter

    ballast = np.ones(1536 * 2**20 // 8)  # 1.5 GiB, touched
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.Sigmoid()).eval()
    example = (torch.rand(1, 3, 8, 8),)
    artifact = OnnxExporter().export(module, example, tmp_path, "fp32", input_names=["target"])
    data = tmp_path / "parity.npz"
    sample = example[0][0].numpy()
    cell.write_parity_data(data, [(sample,)], [[module(example[0]).detach().numpy()]])
    job = cell.CellJob(runtime="onnxruntime", compute="fp32", tolerance="fp32", artifact=str(artifact.path),
                       torch_stage=None, data=str(data), input_names=["target"],
                       output_names=list(artifact.output_names), samples=1, threads=1, warmup=1, runs=3,
                       min_seconds=0.0, max_seconds=5.0, format="onnx")
    outcome = cell.run_cell(job, tmp_path / "cells")
    assert outcome.status == "ok", outcome.error
    assert 0 < outcome.metrics["peak_rss_mb"] < 1000, outcome.metrics
    assert outcome.metrics["rss_after_import_mb"] <= outcome.metrics["peak_rss_mb"]
    assert outcome.metrics["init_ms"] > 0 and outcome.metrics["first_run_ms"] > 0
    del ballast


def test_a_crashing_cell_process_is_an_error_record_not_a_crash(tmp_path: Path) -> None:
    job = _job(tmp_path)
    job.runtime = "no-such-runtime"
    outcome = cell.run_cell(job, tmp_path / "cells")
    assert outcome.status == "error" and "no-such-runtime" in (outcome.error or "")


def test_ort_cold_prepare_leaves_the_read_back_to_a_twin_session(tmp_path: Path) -> None:
    """The cold init a cell times is the session alone: the read-back (onnx import, optimised-graph
    write) comes from a twin session with the same options, and says the same as the eager one."""
    pytest.importorskip("onnxruntime")
    import torch

    from mfsbench.device.runtimes.onnxruntime import OnnxRuntime
    from mfsbench.export.onnx import OnnxExporter

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1)).eval()
    artifact = OnnxExporter().export(module, (torch.rand(1, 3, 8, 8),), tmp_path, "fp32", input_names=["x"])
    runtime = OnnxRuntime()
    cold = runtime.prepare(artifact.path, 1, read_back=False)
    assert not set(axis.READBACK_KEYS) & set(cold.info)
    twin = runtime.read_back(artifact.path, 1)
    eager = runtime.prepare(artifact.path, 1).info
    read = [(info["executed_precision"], info["op_precisions"]) for info in (twin, eager)]
    assert read == [("fp32", {"fp32": 2})] * 2
    assert "twin of the timed session" in twin["precision_source"]


def _efficiency_case(monkeypatch: pytest.MonkeyPatch, fresh_rate: float) -> tuple[Any, Any, Any]:
    from mfsbench.device import roofline, sweep
    from mfsbench.records import Record

    slow = roofline.PeakResult(1e9, "contended", "fp32")
    peaks = roofline.Peaks({"fp32": slow})
    monkeypatch.setattr(roofline, "measure_peaks", lambda **_kw: roofline.Peaks(
        {"fp32": roofline.PeakResult(fresh_rate, "fresh", "fp32")}))
    record = Record("device", "m", metrics={"p50_ms": 10.0, "min_ms": 8.0},
                    info={"executed_precision": "fp32"})
    model = type("M", (), {"macs_executed": 2e7})()  # 2e7 MACs in 10 ms = 2 GMAC/s > the 1 GMAC/s peak
    sweep._efficiency(record, model, label="m", peaks=peaks, threads=1, peak_seconds=0.0)  # type: ignore[arg-type]
    return record, peaks, slow


def test_a_cell_faster_than_a_contended_peak_gets_the_peak_measured_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    record, peaks, _slow = _efficiency_case(monkeypatch, 1e10)
    assert record.status == "ok" and record.metrics["efficiency"] == pytest.approx(0.2)
    assert record.metrics["efficiency_best"] == pytest.approx(0.25)
    assert record.info["peak_remeasured"]["was"] == 1e9 and peaks["fp32"].method == "fresh"


def test_a_cell_still_above_a_fresh_peak_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    record, peaks, slow = _efficiency_case(monkeypatch, 5e8)  # the fresh peak is no higher
    assert record.status == "error" and "efficiency" in (record.error or "") and "> 1" in (record.error or "")
    assert "efficiency" not in record.metrics and peaks["fp32"] is slow
