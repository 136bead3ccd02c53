"""Desktop device report rendered from ``device`` records: latency table, speed ratio, roofline plot.

The student/SimSwap speed ratio is computed from two cells of the *same* run, backend and precision,
and shown next to the paper's 40× (25.6 FPS vs 0.64 FPS on its Dimensity 1100 phone), which is a
different device: the comparison is of ratios, never of FPS.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from mfsbench.errors import MissingDependencyError
from mfsbench.records import INT8_DOT_FEATURES, Record

STUDENT, TEACHER = "mobilefaceswap_224", "simswap_224"
PAPER_RATIO = 25.6 / 0.64  # Table 1, V FPS column (Dimensity 1100)

COLUMNS = (
    ("model", "model"), ("backend", "backend"), ("precision", "precision"), ("status", "status"),
    ("p50_ms", "p50 ms"), ("min_ms", "fastest ms"), ("p90_ms", "p90 ms"), ("mean_ms", "mean ms"),
    ("std_ms", "std ms"),
    ("fps_p50", "FPS"), ("cv", "CV"), ("runs", "runs"), ("init_ms", "init ms"),
    ("first_run_ms", "first ms"), ("max_abs_err", "max |err|"), ("psnr_db", "PSNR dB"),
    ("gmacs", "GMACs"), ("efficiency", "eff."),
)


def latest_cells(records: Sequence[Record]) -> list[Record]:
    """The newest record per (model, backend, precision), in first-seen order."""
    cells: dict[tuple[str, str, str], Record] = {}
    for record in records:
        if record.command != "device":
            continue
        cells[(record.model, record.info.get("backend", ""), record.info.get("precision", ""))] = record
    return list(cells.values())


def _value(record: Record, key: str) -> object:
    if key == "model":
        return record.model
    if key in ("backend", "precision"):
        return record.info.get(key, "")
    if key == "status":
        unstable = record.metrics.get("unstable")
        return "unstable" if record.status == "ok" and unstable else record.status
    return record.metrics.get(key)


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.01:
            return f"{value:.1e}"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _rows(records: Sequence[Record]) -> list[list[str]]:
    return [[_text(_value(r, key)) for key, _ in COLUMNS] for r in latest_cells(records)]


def speed_ratios(records: Sequence[Record]) -> list[tuple[str, str, float]]:
    """(backend, precision, SimSwap p50 / student p50) for every pair measured in the same run."""
    cells = {(r.model, r.info.get("backend"), r.info.get("precision"), r.run_id): r
             for r in latest_cells(records) if r.status == "ok"}
    ratios = []
    for (model, backend, precision, run_id), student in cells.items():
        teacher = cells.get((TEACHER, backend, precision, run_id))
        if model == STUDENT and teacher is not None:
            ratio = teacher.metrics["p50_ms"] / student.metrics["p50_ms"]
            ratios.append((str(backend), str(precision), ratio))
    return ratios


def render_terminal(records: Sequence[Record]) -> str:
    table = [[title for _, title in COLUMNS], *_rows(records)]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, "", *_ratio_lines(records)])


def _ratio_lines(records: Sequence[Record]) -> list[str]:
    return [
        f"SimSwap / MobileFaceSwap video-mode latency ({backend}, {precision}): {ratio:.0f}× "
        f"(paper, on a Dimensity 1100 phone: {PAPER_RATIO:.0f}×)"
        for backend, precision, ratio in speed_ratios(records)
    ]


def machine_line(record: Record) -> str:
    """Where a cell ran: CPU model, count and the ISA features that bound fp32 and int8 speed."""
    env = record.env
    cpu = env.get("cpu") or {}
    isa = cpu.get("isa")
    if isa is None:
        features = "unknown"
    else:
        features = " ".join(isa) or "none of the tracked features"
        if not any(f in isa for f in INT8_DOT_FEATURES):
            features += ", no int8 dot-product instructions (VNNI, AMX, dotprod, i8mm)"
    threads = record.metrics.get("threads")
    return (f"Machine: {cpu.get('model') or '?'} × {env.get('cpu_count', '?')} CPUs; ISA: {features}; "
            f"{env.get('platform', '?')}; threads per cell: {_text(threads) if threads else '?'}.")


def render_markdown(records: Sequence[Record]) -> str:
    cells = latest_cells(records)
    lines = ["# Desktop latency of the video-mode frame stage", ""]
    if cells:
        lines += [machine_line(cells[-1]), ""]
    lines.append("| " + " | ".join(title for _, title in COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(row) + " |" for row in _rows(records)]
    lines += ["", "## Speed ratio", ""]
    lines += [f"- {line}" for line in _ratio_lines(records)] or ["- not measured in one run"]
    profiles = _profile_lines(cells)
    if profiles:
        lines += ["", "## Where the time goes", ""] + [f"- {line}" for line in profiles]
    lines += ["", "## Notes", ""]
    notes = [
        "Timed: the frame stage with one identity injected (video mode), batch 1, at the model's "
        "native size; init (prepare) and the first run are recorded apart, warm-up runs excluded; "
        "statistics over the raw samples kept in the records. CV above 0.10 marks a cell unstable.",
        "Every exported cell was compared with torch on real aligned face crops before timing "
        "(fp32: max |err| ≤ 1e-4 on [0, 1] outputs; fp16 PSNR ≥ 40 dB; int8 PSNR ≥ 30 dB); a cell "
        "outside tolerance is an error and is not timed.",
        "GMACs: the paper convention; efficiency = achieved MAC/s at p50 ÷ this CPU's peak, measured "
        f"as {_peak_method(cells)}.",
        "openvino pins f32 inference; openvino-bf16 keeps OpenVINO's default, which is bf16 only on "
        "CPUs with bf16 support.",
        "Exported graphs get exact rewrites only (mfsbench.export.stages.export_ready: a narrowing "
        "1×1 conv + BN moved before a bilinear upsample; the student's (1 + tanh z)/2 written as "
        "sigmoid(2z) and its blend as target + m·(out − target); bias-free convs given explicit zero "
        "biases in ONNX); parity is against the unrewritten torch stage. "
        "Parity and timing run through the same runtime adapters.",
        "int8 = static int8 weights and activations (ai-edge-quantizer), integer I/O (de)quantized "
        "inside the timed run; calibrated on crops disjoint from the parity crops when ≥ 2 photos are "
        "given.",
    ]
    if any(r.info.get("backend") == "benchmark_app" for r in cells):
        notes.append("benchmark_app rows: OpenVINO's own tool on the same f32 IR (median as p50, its "
                     "avg/min/max; no percentiles, std or raw samples, so no CV).")
    above = [r for r in cells if (r.metrics.get("efficiency") or 0) > 1 and r.info.get("precision") == "fp32"
             and r.info.get("backend") != "openvino-bf16"]  # bf16 may beat an fp32 peak
    if above:
        notes.append("fp32 efficiency above 1 (" + ", ".join(f"{r.model} / {r.info.get('backend')}"
                                                            for r in above)
                     + "): those cells ran faster than the matmul peak measured before the sweep, so "
                     "that peak was taken in a slower moment of this shared machine; compare "
                     "efficiencies with each other, not with 1.")
    for record in cells:
        if record.status != "ok":
            notes.append(f"{record.model} / {record.info.get('backend')} / {record.info.get('precision')}: "
                         f"{record.status} — {record.error}")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _peak_method(cells: Sequence[Record]) -> str:
    """How the sweep measured its peak (older records did not store it: their fixed method)."""
    stored = next((r.info["peak_method"] for r in cells if r.info.get("peak_method")), None)
    return stored or "the best of 5 2048³ fp32 matmuls in torch"


def _profile_lines(cells: Sequence[Record], shown: int = 6, nodes: int = 3) -> list[str]:
    """One line per profiled cell: the operator types' shares and the slowest nodes (``--profile``)."""
    lines = []
    for record in cells:
        what = f"{record.model} / {record.info.get('backend')} / {record.info.get('precision')}"
        if "op_profile_error" in record.info:
            lines.append(f"{what}: profiler failed ({record.info['op_profile_error']})")
        profile = record.info.get("op_profile")
        if not profile:
            continue
        total = profile["total_ms"] or 1.0
        types = ", ".join(f"{op} {100 * ms / total:.0f} % ({ms:.2f} ms)"
                          for op, ms in profile["by_op_type"][:shown])
        slow = ", ".join(f"{node} ({op}) {ms:.2f} ms" for node, op, ms in profile["top_nodes"][:nodes])
        lines.append(f"{what}: {profile['total_ms']:.2f} ms of kernels per run ({profile['tool']}, "
                     f"{profile['runs']} runs after timing): {types}; slowest nodes: {slow}")
    if lines and any(r.info.get("backend") == "litert" for r in cells):
        lines.append("litert: no per-operator profile (the Python interpreter has no profiler and XNNPACK "
                     "runs the graph as one delegate node)")
    return lines


def render_csv(records: Sequence[Record]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([key for key, _ in COLUMNS] + ["error"])
    for record in latest_cells(records):
        writer.writerow([_value(record, key) if _value(record, key) is not None else "" for key, _ in COLUMNS]
                        + [record.error or ""])
    return buffer.getvalue()


def render_json(records: Sequence[Record]) -> str:
    return json.dumps([{key: _value(r, key) for key, _ in COLUMNS} | {"error": r.error}
                       for r in latest_cells(records)], indent=2)


def plot_roofline(records: Sequence[Record], path: Path) -> Path | None:
    """FPS against GMACs per frame (log-log) with the roofline FPS = peak MAC/s ÷ MACs."""
    from mfsbench.report.plots import pyplot

    plt = pyplot()
    cells = [r for r in latest_cells(records) if r.status == "ok" and r.metrics.get("gmacs")]
    if not cells:
        return None
    figure, axis = plt.subplots(figsize=(8, 5.5))
    for record in cells:
        label = f"{record.model} {record.info.get('backend')} {record.info.get('precision')}"
        axis.scatter(record.metrics["gmacs"], record.metrics["fps_p50"], label=label)
    peak = next((r.info.get("peak_macs_per_s") for r in cells if r.info.get("peak_macs_per_s")), None)
    if peak:
        low = min(r.metrics["gmacs"] for r in cells) / 2
        high = max(r.metrics["gmacs"] for r in cells) * 2
        axis.plot([low, high], [peak / (low * 1e9), peak / (high * 1e9)], "k--",
                  label=f"roofline ({peak / 1e9:.0f} GMAC/s peak)")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("GMACs per frame (paper convention)")
    axis.set_ylabel("FPS at p50")
    axis.grid(which="both", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_reports(records: Sequence[Record], out: Path) -> list[Path]:
    """``device_desktop.md``, ``.csv`` and ``.png`` from every device record in the store."""
    if not latest_cells(records):
        return []
    written = []
    for suffix, render in ((".md", render_markdown), (".csv", render_csv)):
        path = out / f"device_desktop{suffix}"
        path.write_text(render(records), encoding="utf-8")
        written.append(path)
    try:
        plot = plot_roofline(records, out / "device_desktop.png")
    except MissingDependencyError:
        plot = None
    if plot is not None:
        written.append(plot)
    return written
