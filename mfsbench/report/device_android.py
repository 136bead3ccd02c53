"""Phone report from ``device-android`` records: FPS per model per device beside the paper's phone FPS.

The paper's FPS (Table 1, V FPS column) was measured on its Dimensity 1100 phone; it is shown "as
reported" for orientation only, never as something this run reproduced.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfsbench.records import Record
from mfsbench.report.frames import column, csv_text, keyed_text, markdown_lines, newest_per_key
from mfsbench.results import records_frame

if TYPE_CHECKING:
    import pandas as pd

COMMAND = "device-android"
#: Table 1 "V FPS" as reported by the paper (Dimensity 1100)
PAPER_FPS = {"mobilefaceswap_224": 25.6, "mobilefaceswap_256": 19.7, "simswap_224": 0.64}

COLUMNS = ("model", "serial", "device", "soc", "tool", "delegate", "precision", "threads", "warmup", "status",
           "p50_ms", "mean_ms", "fps_p50", "fps_mean", "init_ms", "first_run_ms", "runs", "battery_c_before",
           "battery_c_after", "thermal_before", "parity", "paper_fps_as_reported", "error")
#: what a record from before precision and parity were stored gets in those columns
UNRECORDED = "not recorded"


def _pandas() -> Any:
    """pandas, imported when a report is rendered (it costs ~0.5 s, which ``--help`` should not pay)."""
    import pandas

    return pandas


def _flat(records: Sequence[Record]) -> pd.DataFrame:
    """The phone records as flat rows, values as recorded; the index is each one's place in ``records``."""
    frame = records_frame(records, as_recorded=True)
    return frame[column(frame, "command") == COMMAND] if not frame.empty else frame


def _newest(frame: pd.DataFrame) -> pd.DataFrame:
    """Newest row per (model, serial, tool, delegate, precision asked for), in first-seen order."""
    asked = column(frame, "info.precision_requested")
    asked = asked.where(asked.notna(), column(frame, "info.precision"))
    keys = {"model": column(frame, "model"), "serial": column(frame, "info.serial"),
            "tool": column(frame, "info.tool"), "delegate": column(frame, "info.delegate"), "asked": asked}
    return newest_per_key(frame, _pandas().DataFrame({k: keyed_text(v) for k, v in keys.items()}))


def latest(records: Sequence[Record]) -> list[Record]:
    """Newest record per (model, serial, tool, delegate, precision asked for), in first-seen order."""
    return [records[position] for position in _newest(_flat(records)).index]


def _soc(frame: pd.DataFrame) -> pd.Series:
    """The phone's chip: the first of its SoC, platform and hardware names that the phone gave."""
    soc = _pandas().Series(["unavailable"] * len(frame), index=frame.index, dtype=object)
    for key in ("hardware", "platform", "soc"):  # the first one given wins: fill the last first
        value = column(frame, f"info.device.{key}")
        given = value.notna() & (value != "unavailable")
        soc = value.where(given, soc)
    return soc


def _precision(frame: pd.DataFrame) -> pd.Series:
    """The precision that ran. Records from before it was recorded say fp32 whatever ran: right for the
    CPU delegates, a label for the GPU one (its default is fp16), which is then shown as not recorded."""
    precision = column(frame, "info.precision").map(lambda v: UNRECORDED if v is None else v)
    before = column(frame, "info.precision_source").isna() & (column(frame, "info.delegate") == "gpu")
    return precision.where(~before, UNRECORDED)


#: table column → the flat record column it shows as recorded
_SOURCES = {"serial": "info.serial", "device": "info.device.model", "tool": "info.tool",
            "delegate": "info.delegate", "threads": "info.threads", "warmup": "info.warmup",
            "battery_c_before": "info.state_before.battery_temp_c",
            "battery_c_after": "info.state_after.battery_temp_c",
            "thermal_before": "info.state_before.thermal_status"}


def table(records: Sequence[Record]) -> pd.DataFrame:
    """The phone table: one row per newest cell, :data:`COLUMNS` as columns (a ``host`` column after the
    model's when the phones hang off several hosts), values as recorded."""
    frame = _newest(_flat(records))
    derived = {"soc": _soc(frame), "precision": _precision(frame),
               "parity": column(frame, "info.parity").map(lambda v: UNRECORDED if v is None else v),
               "paper_fps_as_reported": column(frame, "model").map(PAPER_FPS.get)}
    out = _pandas().DataFrame(index=frame.index)
    for name in COLUMNS:
        if name in derived:
            out[name] = derived[name]
        elif name in _SOURCES:
            out[name] = column(frame, _SOURCES[name])
        elif name in ("model", "status", "error"):
            out[name] = column(frame, name)
        else:
            out[name] = column(frame, f"metrics.{name}")
    if column(frame, "env.host").dropna().nunique() > 1:
        out.insert(1, "host", column(frame, "env.host"))
    return out.astype(object).reset_index(drop=True)


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value).replace("|", "/")


def render_markdown(records: Sequence[Record]) -> str:
    lines = ["# Phone timings (mfsbench device --adb)", "",
             "FPS = 1000 / latency of the frame stage as timed by the benchmark tool on each phone, with the "
             "delegate and precision in its row: the fp32 export, run in the precision the tool was told "
             "(TFLite's GPU delegate: `--gpu-precision`), or the one benchmark_model printed where it did. "
             "Parity: the phone's outputs are not compared with PyTorch's (only the model file's sha256 is "
             "checked on the phone), so a row says how fast, not how right. "
             "The paper's FPS is from its Dimensity 1100 phone, **as reported**, not reproduced here.", ""]
    lines += markdown_lines(table(records).map(_text))
    return "\n".join(lines) + "\n"


def render_csv(records: Sequence[Record]) -> str:
    return csv_text(table(records))


def write_reports(records: Sequence[Record], out: Path) -> list[Path]:
    """``device_android.md`` and ``.csv`` when the store has phone records."""
    if not latest(records):
        return []
    written = []
    for suffix, render in ((".md", render_markdown), (".csv", render_csv)):
        path = out / f"device_android{suffix}"
        path.write_text(render(records), encoding="utf-8")
        written.append(path)
    return written
