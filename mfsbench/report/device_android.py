"""Phone report from ``device-android`` records: FPS per model per device beside the paper's phone FPS.

The paper's FPS (Table 1, V FPS column) was measured on its Dimensity 1100 phone; it is shown "as
reported" for orientation only, never as something this run reproduced.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from mfsbench.records import Record

COMMAND = "device-android"
#: Table 1 "V FPS" as reported by the paper (Dimensity 1100)
PAPER_FPS = {"mobilefaceswap_224": 25.6, "mobilefaceswap_256": 19.7, "simswap_224": 0.64}

COLUMNS = ("model", "serial", "device", "soc", "tool", "delegate", "precision", "threads", "warmup", "status",
           "p50_ms", "mean_ms", "fps_p50", "fps_mean", "init_ms", "first_run_ms", "runs", "battery_c_before",
           "battery_c_after", "thermal_before", "parity", "paper_fps_as_reported", "error")
#: what a record from before precision and parity were stored gets in those columns
UNRECORDED = "not recorded"


def latest(records: Sequence[Record]) -> list[Record]:
    """Newest record per (model, serial, tool, delegate, precision asked for), in first-seen order."""
    cells: dict[tuple[str, ...], Record] = {}
    for record in records:
        if record.command == COMMAND:
            key = (record.model, str(record.info.get("serial")), str(record.info.get("tool")),
                   str(record.info.get("delegate")),
                   str(record.info.get("precision_requested", record.info.get("precision"))))
            cells[key] = record
    return list(cells.values())


def row(record: Record) -> dict[str, object]:
    device = record.info.get("device") or {}
    before, after = record.info.get("state_before") or {}, record.info.get("state_after") or {}
    soc = next((device.get(k) for k in ("soc", "platform", "hardware")
                if device.get(k) not in (None, "unavailable")), "unavailable")
    out: dict[str, object] = {
        "model": record.model, "serial": record.info.get("serial"), "device": device.get("model"),
        "soc": soc, "tool": record.info.get("tool"), "delegate": record.info.get("delegate"),
        "precision": _precision(record), "threads": record.info.get("threads"),
        "warmup": record.info.get("warmup"), "status": record.status,
        "parity": record.info.get("parity", UNRECORDED),
        "battery_c_before": before.get("battery_temp_c"), "battery_c_after": after.get("battery_temp_c"),
        "thermal_before": before.get("thermal_status"),
        "paper_fps_as_reported": PAPER_FPS.get(record.model), "error": record.error,
    }
    for key in ("p50_ms", "mean_ms", "fps_p50", "fps_mean", "init_ms", "first_run_ms", "runs"):
        out[key] = record.metrics.get(key)
    return out


def _precision(record: Record) -> object:
    """The precision that ran. Records from before it was recorded say fp32 whatever ran: right for the
    CPU delegates, a label for the GPU one (its default is fp16), which is then shown as not recorded."""
    if "precision_source" not in record.info and record.info.get("delegate") == "gpu":
        return UNRECORDED
    return record.info.get("precision", UNRECORDED)


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value).replace("|", "/")


def render_markdown(records: Sequence[Record]) -> str:
    rows = [row(r) for r in latest(records)]
    lines = ["# Phone timings (mfsbench device --adb)", "",
             "FPS = 1000 / latency of the frame stage as timed by the benchmark tool on each phone, with the "
             "delegate and precision in its row: the fp32 export, run in the precision the tool was told "
             "(TFLite's GPU delegate: `--gpu-precision`), or the one benchmark_model printed where it did. "
             "Parity: the phone's outputs are not compared with PyTorch's (only the model file's sha256 is "
             "checked on the phone), so a row says how fast, not how right. "
             "The paper's FPS is from its Dimensity 1100 phone, **as reported**, not reproduced here.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_text(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_csv(records: Sequence[Record]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in latest(records):
        writer.writerow({k: ("" if v is None else v) for k, v in row(r).items()})
    return buf.getvalue()


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
