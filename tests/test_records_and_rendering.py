"""Records round-trip, runs keep what they measured, renderers round as the paper rounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfsbench import flops as flops_module
from mfsbench.errors import BadInputError, CountMismatchError
from mfsbench.records import Record, append_records, describe_cpu, environment, read_records
from mfsbench.report import device as device_report
from mfsbench.report.numbers import delta_pct, format_delta, paper_round


@pytest.mark.parametrize(
    ("value", "text"),
    [(82.062, "82.1"), (107.245, "107"), (1.9002, "1.90"), (0.496, "0.50"), (0.3332, "0.33"),
     (2306.2, "2310"), (8.0766, "8.08"), (7.5232, "7.52"), (None, "-")],
)
def test_paper_rounding(value: float | None, text: str) -> None:
    assert paper_round(value) == text


def test_delta_against_the_paper() -> None:
    assert delta_pct(8.0766, 8.07) == pytest.approx(0.0818, abs=1e-3)
    assert format_delta(delta_pct(73.4, 91.1)) == "-19.4%"
    assert delta_pct(1.0, None) is None


def test_records_round_trip(tmp_path: Path) -> None:
    record = Record("flops", "m", mode="video", metrics={"params_m": 0.5}, convention="paper",
                    input_shapes={"target": [1, 3, 224, 224]}, info={"paper": {"params_m": 0.5}})
    append_records(tmp_path / "r.jsonl", [record, record])
    back = read_records(tmp_path / "r.jsonl")
    assert back == [record, record]


def test_corrupt_store_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    append_records(path, [Record("flops", "m")])
    with path.open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(BadInputError, match=r"r.jsonl:2 is not a record"):
        read_records(path)


def test_environment_names_versions_and_git_state() -> None:
    env = environment()
    assert env["packages"]["torch"].startswith("2.13.0")
    assert "git_commit" in env and "git_dirty" in env and env["host"]
    assert "model" in env["cpu"] and "isa" in env["cpu"]


def test_git_dirty_means_the_measuring_code_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    from mfsbench import records

    calls: list[tuple[str, ...]] = []

    def fake_git(*args: str) -> str:
        calls.append(args)
        if args[0] == "rev-parse":
            return "abc123"
        return " M mfsbench/device/sweep.py" if "mfsbench" in args else ""

    monkeypatch.setattr(records, "_git", fake_git)
    records.environment.cache_clear()
    try:
        env = records.environment()
    finally:
        records.environment.cache_clear()
    assert env["git_commit"] == "abc123" and env["git_dirty"] is True
    (status,) = [c for c in calls if c[0] == "status"]
    assert "reports" not in status and {"mfsbench", "baselines", "pyproject.toml"} <= set(status)


X86_CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx f16c avx2 fma avx512f avx512_vnni amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes asimdhp asimddp i8mm
CPU part\t: 0xd0c
"""


def test_cpu_description_and_device_machine_line() -> None:
    x86 = describe_cpu(X86_CPUINFO)
    assert x86 == {"model": "Intel(R) Xeon(R) Platinum 8480+",
                   "isa": ["avx2", "fma", "f16c", "avx512f", "avx512_vnni", "amx_int8"]}
    assert describe_cpu(ARM_CPUINFO) == {"model": None, "isa": ["asimd", "asimdhp", "asimddp", "i8mm"]}
    cell = Record("device", "m", metrics={"threads": 2.0})
    cell.env = {"cpu": {"model": "AMD EPYC", "isa": ["avx2", "fma"]}, "cpu_count": 2, "platform": "Linux"}
    line = device_report.machine_line(cell)
    assert line.startswith("Machine: AMD EPYC × 2 CPUs; ISA: avx2 fma, no int8 dot-product")
    assert line.endswith("threads per cell: 2.")
    cell.env["cpu"] = x86
    assert "no int8" not in device_report.machine_line(cell)
    cell.env = {}  # a record from before the CPU was recorded
    assert "ISA: unknown" in device_report.machine_line(cell)


def test_device_report_lists_each_precisions_peak_and_never_explains_efficiency_above_one() -> None:
    """Audit A3/A8: the peaks of the shown run, per precision, with their method or the reason there is
    none; an efficiency above 1 is an error record (PhysicalLimitError), never a note that excuses it."""
    method = "fp32 matmul peak: torch 2048x2048x2048, executed fp32, 2 threads, best of 19 runs (2.0 s)"
    peaks = {"fp32": {"macs_per_s": 8e10, "method": method, "executed_precision": "fp32", "native": True},
             "bf16": {"macs_per_s": None, "reason": "this CPU has no avx512_bf16, amx_bf16 or bf16"}}

    def cell(model: str, efficiency: float, status: str = "ok", error: str | None = None) -> Record:
        info = {"backend": "litert", "precision": "fp32", "size": 224, "peaks": peaks}
        return Record("device", model, metrics={"p50_ms": 5.0, "efficiency": efficiency}, info=info,
                      run_id="r", status=status, error=error)  # type: ignore[arg-type]

    impossible = "b: efficiency 1.200 > 1 ... is physically impossible"
    md = device_report.render_markdown([cell("a", 0.5), cell("b", 0.9, "error", impossible)])
    assert f"- fp32: 80.0 GMAC/s — {method}" in md
    assert "- bf16: none — this CPU has no avx512_bf16" in md
    assert "b / litert / fp32: error — b: efficiency 1.200 > 1" in md
    assert "slower moment" not in md and "compare efficiencies with each other" not in md


def test_a_failed_count_is_an_error_record_and_exit_1(run_cli, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = flops_module.count_spec

    def failing(spec, *args, **kwargs):
        if spec.name == "test_frame_only":
            raise CountMismatchError("counters disagree")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(flops_module, "count_spec", failing)
    result = run_cli("flops", "--models", "test_frame_only,test_mobilefaceswap", "--out", str(tmp_path))
    assert result.code == 1
    assert "error: test_frame_only (image): counters disagree" in result.err
    records = read_records(tmp_path / "records.jsonl")
    assert {r.status for r in records if r.model == "test_frame_only"} == {"error"}
    assert all(r.status == "ok" for r in records if r.model == "test_mobilefaceswap")
    assert "error" in (tmp_path / "table1_complexity.md").read_text()


def test_interrupted_run_keeps_finished_models(run_cli, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = flops_module.count_spec

    def interrupted(spec, *args, **kwargs):
        if spec.name == "test_mobilefaceswap":
            raise KeyboardInterrupt
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(flops_module, "count_spec", interrupted)
    result = run_cli("flops", "--models", "test_frame_only,test_mobilefaceswap", "--out", str(tmp_path))
    assert result.code == 130
    models = {r.model for r in read_records(tmp_path / "records.jsonl")}
    assert models == {"test_frame_only"}
