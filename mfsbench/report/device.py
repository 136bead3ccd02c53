"""Desktop device report rendered from ``device`` records: latency table, speed ratio, roofline plot.

A report shows one run (the newest by default): cells of different runs were timed under different
peaks, loads and commits. The student/SimSwap speed ratio pairs two cells of that run, runtime and
precision, flagged when either is unstable, and is shown next to the paper's 40× (25.6 FPS vs
0.64 FPS on its Dimensity 1100 phone), which is a different device: the comparison is of ratios,
never of FPS.
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
    ("run_id", "run"), ("model", "model"), ("size", "size"), ("backend", "runtime"),
    ("precision", "precision"), ("executed_precision", "executed"), ("native", "native"),
    ("status", "status"), ("p50_ms", "p50 ms"), ("min_ms", "fastest ms"), ("p90_ms", "p90 ms"),
    ("mean_ms", "mean ms"), ("std_ms", "std ms"), ("fps_p50", "FPS at p50"), ("cv", "CV"), ("runs", "runs"),
    ("init_ms", "cold init ms"), ("first_run_ms", "cold first ms"), ("peak_rss_mb", "cell peak RSS MB"),
    ("max_abs_err", "max |err|"), ("psnr_db", "PSNR dB"), ("parity_crops", "parity crops"),
    ("gmacs", "GMACs run"), ("gmacs_paper", "paper GFLOPs"), ("efficiency", "eff. p50"),
    ("efficiency_best", "eff. fastest"),
)


def newest_run(records: Sequence[Record]) -> str | None:
    """The run id of the newest desktop device record (the run a report shows by default)."""
    runs = [r.run_id for r in records if r.command == "device" and r.info.get("backend") is not None]
    return str(runs[-1]) if runs and runs[-1] is not None else None


def latest_cells(records: Sequence[Record], run_id: str | None = None) -> list[Record]:
    """The cells of one run (default: the newest), newest record per (model, size, runtime, precision).

    A report never mixes runs: a cell of another run was timed under another peak, load and commit.
    """
    wanted = run_id if run_id is not None else newest_run(records)
    cells: dict[tuple[str, object, str, str], Record] = {}
    for record in records:
        if record.command != "device" or record.run_id != wanted:
            continue
        key = (record.model, record.info.get("size"), str(record.info.get("backend", "")),
               str(record.info.get("precision", "")))
        cells[key] = record
    return list(cells.values())


def _status(record: Record) -> str:
    if record.status != "ok":
        return record.status
    if record.metrics.get("too_few_runs"):
        return "too few runs"
    return "unstable" if record.metrics.get("unstable") else "ok"


def _parity_crops(record: Record) -> str | None:
    crops = record.info.get("parity_crops")
    if not isinstance(crops, dict) or "max_abs_err" not in record.metrics:
        return None
    if record.info.get("precision") == "int8":
        return f"{crops.get('parity_crops')} {'held out' if crops.get('held_out') else 'in-sample'}"
    return str(crops.get("parity_crops"))


#: columns read from ``record.info`` rather than ``record.metrics``
_INFO_COLUMNS = ("backend", "precision", "size", "executed_precision", "gmacs_paper")


def _value(record: Record, key: str) -> object:
    derived = {"model": lambda: record.model, "run_id": lambda: record.run_id,
               "status": lambda: _status(record), "parity_crops": lambda: _parity_crops(record),
               "native": lambda: {True: "yes", False: "no"}.get(record.info.get("native"))}
    if key in derived:
        return derived[key]()
    if key in _INFO_COLUMNS:
        return record.info.get(key)
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


def speed_ratios(records: Sequence[Record]) -> list[tuple[str, str, float, bool]]:
    """(runtime, precision, SimSwap p50 / student p50, stable) for each pair of the shown run.

    ``stable`` is False when either cell is unstable (CV above 0.10) or ran too few times: such a
    ratio is printed flagged, never as a plain result.
    """
    cells = {(r.model, r.info.get("backend"), r.info.get("precision")): r
             for r in latest_cells(records) if r.status == "ok" and r.metrics.get("p50_ms")}
    ratios = []
    for (model, backend, precision), student in cells.items():
        teacher = cells.get((TEACHER, backend, precision))
        if model == STUDENT and teacher is not None:
            ratio = teacher.metrics["p50_ms"] / student.metrics["p50_ms"]
            stable = _status(student) == "ok" and _status(teacher) == "ok"
            ratios.append((str(backend), str(precision), ratio, stable))
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
        + ("" if stable else " — UNSTABLE: a cell of the pair has CV > 0.10 or too few runs; re-run before "
           "quoting it")
        for backend, precision, ratio, stable in speed_ratios(records)
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
        measured = next((r for r in reversed(cells) if r.status == "ok"), cells[-1])  # it has the threads
        lines += [f"Run {cells[-1].run_id} (the newest in the record store; a report shows one run). "
                  + machine_line(measured), ""]
        lines += [f"Weights: {_one_of(cells, 'weights')}. "
                  f"Parity inputs: {_one_of(cells, 'parity_inputs')}.", ""]
    lines.append("| " + " | ".join(title for _, title in COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(row) + " |" for row in _rows(records)]
    lines += ["", "## Speed ratio", ""]
    lines += [f"- {line}" for line in _ratio_lines(records)] or ["- not measured in this run"]
    lines += ["", "## Peaks of this machine", ""]
    lines += [f"- {line}" for line in _peak_lines(cells)] or ["- not measured"]
    profiles = _profile_lines(cells)
    if profiles:
        lines += ["", "## Where the time goes", ""] + [f"- {line}" for line in profiles]
    lines += ["", "## Notes", ""]
    notes = [
        "Timed: the frame stage with one identity injected (video mode), batch 1. Each cell runs in a "
        "fresh process: init (prepare) and the first inference are cold (nothing opened the file "
        "before), warm-up runs are excluded, statistics come from the raw samples kept in the records, "
        "and the peak RSS is that cell process's own (runtime import included). CV above 0.10 marks a "
        "cell unstable; a capped cell with fewer runs than asked says 'too few runs'. FPS = 1000 / p50.",
        "Precision is what the kernels computed, read back from the runtime after compiling "
        "(OpenVINO: per-layer runtime precision; ONNX Runtime: the optimised graph's operator types; "
        "LiteRT: operator input types): 'executed' counts the matrix ops' precision, and a cell whose "
        "runtime ran another precision than asked is an error. fp16-weights = fp16 storage, f32 "
        "arithmetic. 'native: no' = the CPU lacks the dedicated instructions (int8 without VNNI/AMX/"
        "dotprod runs its multiply-adds in two steps); bf16/fp16 without them are skipped cells, never "
        "a silent f32 run.",
        "Parity ran in the same process and session that was timed, before timing, against torch fp32 "
        "on real aligned face crops (fp32: max |err| ≤ 1e-4 on [0, 1] outputs; bf16, fp16 and "
        "fp16-weights PSNR ≥ 40 dB; int8 PSNR ≥ 30 dB); int8 parity crops are 'held out' when they "
        "come from photos the calibration never saw, else 'in-sample'. A cell outside tolerance is "
        "an error and is not timed.",
        "GMACs run: conv/linear/matmul multiply-accumulates of the graph that was exported, after the "
        "exact rewrites below; paper GFLOPs (fvcore 2021 rules, BN and upsampling included, "
        "unrewritten) stay a separate column. Efficiency = GMACs run ÷ (p50 or fastest × the peak "
        "of the precision that executed); above 1 is a bug and makes the cell an error.",
        "Exported graphs get exact rewrites only (mfsbench.export.stages.export_ready: a narrowing "
        "1×1 conv + BN moved before a bilinear upsample; the student's (1 + tanh z)/2 written as "
        "sigmoid(2z) and its blend as target + m·(out − target); bias-free convs given explicit zero "
        "biases in ONNX); parity is against the unrewritten torch stage.",
    ]
    if any(r.info.get("weights", "").startswith("random") for r in cells):
        notes.append("Random weights: a randomly initialised fusion mask is nearly constant (≈ 0.5), "
                     "so parity here checks the arithmetic of the runtime, not trained behaviour; pass "
                     "--checkpoint for the official weights.")
    cards = {r.model: r for r in cells if r.info.get("card")}
    for model, record in cards.items():  # a card has no torch stage: say what replaced it
        info = record.info
        notes.append(f"{model}: model card {info['card']} (licence {info.get('license')}, "
                     f"{'commercial use allowed' if info.get('license_commercial') else 'non-commercial'}); "
                     f"weights {info.get('weights')}; its ONNX file is the fp32 artefact (derivatives in "
                     f"the per-user cache); parity against {info.get('parity_reference')}, not torch; "
                     f"{info.get('identity_input')}; GMACs run: {info.get('macs_source')}.")
    if any(r.info.get("backend") == "benchmark_app" for r in cells):
        notes.append("benchmark_app rows: OpenVINO's own tool on the same IR and precision request "
                     "(median as p50, its avg/min/max, its own thread count; no percentiles, std or raw "
                     "samples, so no CV); it returns no outputs, so its parity ran through OpenVINO's "
                     "Python API on the same IR and configuration.")
    for record in cells:
        if record.info.get("native_note"):
            notes.append(f"{_what(record)}: not native — {record.info['native_note']}")
        again = record.info.get("peak_remeasured")
        if again:
            notes.append(f"{_what(record)} ran faster than the {record.info.get('peak_precision')} peak "
                         f"measured before it ({again['was'] / 1e9:.1f} GMAC/s, a contended moment): "
                         f"the peak was measured again at once ({again['now'] / 1e9:.1f} GMAC/s) and used "
                         "from then on")
        if record.status != "ok":
            notes.append(f"{_what(record)}: {record.status} — {record.error}")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _what(record: Record) -> str:
    return f"{record.model} / {record.info.get('backend')} / {record.info.get('precision')}"


def _one_of(cells: Sequence[Record], key: str) -> str:
    """A per-record info value that a run shares; several are listed (a run should not mix them)."""
    values = list(dict.fromkeys(str(r.info.get(key)) for r in cells if r.info.get(key)))
    return "; ".join(values) if values else "not recorded"


def _peak_lines(cells: Sequence[Record]) -> list[str]:
    """One line per precision: the peak MAC/s this run measured and how."""
    # the last cell's: a peak re-measured during the run (a cell beat it) is the one that held
    stored = next((r.info["peaks"] for r in reversed(cells) if r.info.get("peaks")), None) or {}
    return [f"{precision}: {peak['macs_per_s'] / 1e9:.1f} GMAC/s — {peak['method']}"
            if peak.get("macs_per_s") else f"{precision}: none — {peak.get('method') or peak.get('reason')}"
            for precision, peak in stored.items()]


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
    cells = [r for r in latest_cells(records) if r.status == "ok" and r.metrics.get("gmacs")
             and r.metrics.get("fps_p50")]
    if not cells:
        return None
    figure, axis = plt.subplots(figsize=(8, 5.5))
    for record in cells:
        label = f"{record.model} {record.info.get('backend')} {record.info.get('precision')}"
        axis.scatter(record.metrics["gmacs"], record.metrics["fps_p50"], label=label)
    peaks = next((r.info["peaks"] for r in reversed(cells) if r.info.get("peaks")), None) or {}
    low = min(r.metrics["gmacs"] for r in cells) / 2
    high = max(r.metrics["gmacs"] for r in cells) * 2
    for (precision, peak), style in zip(peaks.items(), ("k--", "k:", "k-."), strict=False):
        rate = peak.get("macs_per_s")
        if rate:
            axis.plot([low, high], [rate / (low * 1e9), rate / (high * 1e9)], style,
                      label=f"{precision} roofline ({rate / 1e9:.0f} GMAC/s peak)")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("GMACs per frame (conv/linear/matmul of the exported graph)")
    axis.set_ylabel("FPS at p50")
    axis.grid(which="both", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_reports(records: Sequence[Record], out: Path) -> list[Path]:
    """``device_desktop.md``, ``.csv`` and ``.png`` of the newest desktop run in the store."""
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
