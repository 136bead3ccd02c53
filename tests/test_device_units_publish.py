"""``mfsbench device --results-url``: each model unit published as one file, imported on resume.

The local engine runs the same units as Ray (no Ray needed here). A driver killed after a unit
finished but before its records reached ``records.jsonl`` is simulated by cutting that model's
records from the store: ``--resume`` must import the published unit (same measurement, not a new
one); a unit's name belongs to its run id and its own pending cells.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mfsbench.records import Record, append_records, read_records
from tests.conftest import cli_in_process
from tests.small_peaks import use_small_peaks

#: two tiny models (two units), torch-eager fp32 (no export): the cheapest real timing cells
SWEEP = ("device", "--models", "test_frame_only,test_mobilefaceswap", "--backends", "torch-eager",
         "--precision", "fp32", "--threads", "1", "--runs", "2", "--warmup", "0", "--min-seconds", "0",
         "--peak-seconds", "0.05")


def _published(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


def _measured(record: Record) -> tuple:
    """What identifies one measurement: the unit's clock and the latency it timed."""
    return record.model, record.info["unit"]["started"], record.metrics["p50_ms"]


@pytest.mark.slow  # two tiny sweeps (peaks on a small product, tests/small_peaks.py)
@pytest.mark.cli
def test_a_published_unit_is_imported_on_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_small_peaks(monkeypatch)
    out, units = tmp_path / "out", tmp_path / "units"
    first = cli_in_process(*SWEEP, "--results-url", str(units), "--out", str(out))
    assert first.code == 0, first.err
    records = read_records(out / "records.jsonl")
    assert {r.model for r in records} == {"test_frame_only", "test_mobilefaceswap"}
    assert len(_published(units)) == 2 and {r.info["engine"] for r in records} == {"local"}
    # the driver "died" after test_mobilefaceswap's unit was published, before its records landed
    (out / "records.jsonl").unlink()
    append_records(out / "records.jsonl", [r for r in records if r.model == "test_frame_only"])
    resumed = cli_in_process(*SWEEP, "--results-url", str(units), "--out", str(out), "--resume")
    assert resumed.code == 0, resumed.err
    assert "test_mobilefaceswap @ 64: 1 cell(s) of this run imported from" in resumed.err
    after = read_records(out / "records.jsonl")
    assert sorted(map(_measured, after)) == sorted(map(_measured, records))  # imported, not re-measured
    assert len({r.run_id for r in after}) == 1 and len(_published(units)) == 2


def test_a_units_name_belongs_to_its_run_and_its_pending_cells() -> None:
    """Another run (another id) never imports this run's file; other models' progress does not
    rename a unit (a resume finds it whatever else landed meanwhile)."""
    from mfsbench.device.sweep import SweepSettings, WeightsRef
    from mfsbench.device.units import DesktopUnitTask
    from mfsbench.registry import get_spec

    unit = (get_spec("test_frame_only"), 32)
    settings = SweepSettings(1, 0, 2, 0.0, 10.0)
    cells = (("torch-eager", "fp32"),)

    def task(run_id: str, done: frozenset = frozenset()) -> DesktopUnitTask:
        return DesktopUnitTask(cells, settings, WeightsRef(seed=0), None, 0.05, done, run_id=run_id)

    name = task("run-a").unit_name(unit)
    assert task("run-b").unit_name(unit) != name
    other_model_done = frozenset({("test_mobilefaceswap", 64, "torch-eager", "fp32")})
    assert task("run-a", other_model_done).unit_name(unit) == name
    assert task("run-a", frozenset({("test_frame_only", 32, "torch-eager", "fp32")})).unit_name(unit) != name


@pytest.mark.cli
def test_results_url_with_phones_is_one_line(tmp_path: Path) -> None:
    result = cli_in_process("device", "--adb", "--models", "test_frame_only", "--results-url", str(tmp_path),
                            "--out", str(tmp_path / "out"))
    assert result.code == 2 and "drop --results-url" in result.err
    assert len(result.err.strip().splitlines()) == 1
