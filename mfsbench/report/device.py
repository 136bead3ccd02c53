"""Desktop device report rendered from ``device`` records: latency table, speed ratio, roofline plot.

A report shows one run (the newest by default): cells of different runs were timed under different
peaks, loads and commits. The student/SimSwap speed ratio pairs two cells of that run, runtime and
precision, flagged when either is unstable, and is shown next to the paper's 40× (25.6 FPS vs
0.64 FPS on its Dimensity 1100 phone), which is a different device: the comparison is of ratios,
never of FPS.

The table is a DataFrame selected from :func:`mfsbench.results.records_frame` and written by
:mod:`mfsbench.report.frames`, as Tables 1 and 2 are. A run spread over several hosts (``device
--engine ray``) gets a ``host`` column, a machine line and peaks per host, and pairs the speed ratio
within one host only: a latency ratio of two machines says nothing about the two models.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfsbench.errors import MissingDependencyError
from mfsbench.records import INT8_DOT_FEATURES, Record
from mfsbench.report.frames import (
    column,
    csv_text,
    fixed_width,
    json_text,
    keyed_text,
    markdown_lines,
    newest_per_key,
)
from mfsbench.results import records_frame

if TYPE_CHECKING:
    import pandas as pd

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


def _pandas() -> Any:
    """pandas, imported when a report is rendered (it costs ~0.5 s, which ``--help`` should not pay)."""
    import pandas

    return pandas


def _flat(records: Sequence[Record]) -> pd.DataFrame:
    """Every record as one flat row, values as recorded (see :func:`mfsbench.results.records_frame`)."""
    return records_frame(records, as_recorded=True)


def _newest(frame: pd.DataFrame) -> str | None:
    desktop = frame[(column(frame, "command") == "device") & column(frame, "info.backend").notna()]
    last = desktop["run_id"].iloc[-1] if len(desktop) else None
    return None if last is None else str(last)


def newest_run(records: Sequence[Record]) -> str | None:
    """The run id of the newest desktop device record (the run a report shows by default)."""
    return _newest(_flat(records))


def _shown(records: Sequence[Record], run_id: str | None = None) -> pd.DataFrame:
    """The flat rows of one run's cells (default: the newest run), newest record per (model, size,
    runtime, precision); the index is each record's position in ``records``."""
    frame = _flat(records)
    if frame.empty:
        return frame
    wanted = run_id if run_id is not None else _newest(frame)
    runs = column(frame, "run_id")
    same = runs.isna() if wanted is None else runs == wanted
    device = frame[(column(frame, "command") == "device") & same]
    keys = _pandas().DataFrame({"model": column(device, "model"), "size": column(device, "info.size"),
                                "backend": keyed_text(column(device, "info.backend")),
                                "precision": keyed_text(column(device, "info.precision"))})
    return newest_per_key(device, keys)


def latest_cells(records: Sequence[Record], run_id: str | None = None) -> list[Record]:
    """The cells of one run (default: the newest), newest record per (model, size, runtime, precision).

    A report never mixes runs: a cell of another run was timed under another peak, load and commit.
    """
    return [records[position] for position in _shown(records, run_id).index]


def _status(frame: pd.DataFrame) -> pd.Series:
    """What a cell's status column says: its record's status, or ok / unstable / too few runs."""
    status = column(frame, "status")
    few = column(frame, "metrics.too_few_runs").map(bool)
    unstable = column(frame, "metrics.unstable").map(bool)
    shown = unstable.map({True: "unstable", False: "ok"})
    shown[few] = "too few runs"
    return shown.where(status == "ok", status).astype(object)


def _parity_crops(frame: pd.DataFrame) -> pd.Series:
    """How many crops parity ran on (for int8: held out or in-sample), where parity was measured."""
    count, held = column(frame, "info.parity_crops.parity_crops"), column(frame, "info.parity_crops.held_out")
    recorded = count.notna() | held.notna()
    measured = recorded & column(frame, "metrics.max_abs_err").notna()
    int8 = column(frame, "info.precision") == "int8"
    text = [(f"{n} {'held out' if h else 'in-sample'}" if q else str(n)) if m else None
            for n, h, q, m in zip(count, held, int8, measured, strict=True)]
    return _pandas().Series(text, index=frame.index, dtype=object)


#: columns read from ``record.info`` rather than ``record.metrics``
_INFO_COLUMNS = ("backend", "precision", "size", "executed_precision", "gmacs_paper")


def _hosts(frame: pd.DataFrame) -> list[str]:
    """The hosts the shown cells ran on, in first-seen order (a record from before hosts: none)."""
    return [str(h) for h in column(frame, "env.host").dropna().unique()]


def _table(frame: pd.DataFrame, *, error: bool = False) -> pd.DataFrame:
    """The report table of the shown cells: one row per cell, the :data:`COLUMNS` keys as columns (a
    ``host`` column after the run's when the cells ran on several hosts), values as recorded."""
    pd = _pandas()
    derived = {"run_id": column(frame, "run_id"), "model": column(frame, "model"), "status": _status(frame),
               "parity_crops": _parity_crops(frame),
               "native": column(frame, "info.native").map({True: "yes", False: "no"}.get)}
    table = pd.DataFrame(index=frame.index)
    for key, _ in COLUMNS:
        if key in derived:
            table[key] = derived[key]
        else:
            table[key] = column(frame, f"{'info' if key in _INFO_COLUMNS else 'metrics'}.{key}")
    if len(_hosts(frame)) > 1:
        table.insert(1, "host", column(frame, "env.host"))
    if error:
        table["error"] = column(frame, "error")
    return table.astype(object).reset_index(drop=True)


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.01:
            return f"{value:.1e}"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _titled(frame: pd.DataFrame) -> pd.DataFrame:
    """The report table as text cells under the column titles (what the terminal and markdown show)."""
    table = _table(frame)
    titles = dict(COLUMNS) | {"host": "host"}
    return table.map(_text).rename(columns=titles)


def _ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Student and SimSwap cells of the shown run paired by runtime, precision and host: a ratio of
    latencies from two machines says nothing about the two models."""
    pd = _pandas()
    p50 = column(frame, "metrics.p50_ms")
    timed = frame[(column(frame, "status") == "ok") & p50.map(bool)]
    cells = pd.DataFrame({"model": column(timed, "model"), "backend": column(timed, "info.backend"),
                          "precision": column(timed, "info.precision"),
                          "host": keyed_text(column(timed, "env.host")),
                          "p50": column(timed, "metrics.p50_ms"),
                          "status": _status(timed)})
    cells = newest_per_key(cells, cells[["model", "backend", "precision", "host"]])
    pairs = cells[cells["model"] == STUDENT].merge(cells[cells["model"] == TEACHER],
                                                   on=["backend", "precision", "host"],
                                                   suffixes=("_student", "_teacher"))
    pairs["ratio"] = [t / s for t, s in zip(pairs["p50_teacher"], pairs["p50_student"], strict=True)]
    pairs["stable"] = (pairs["status_student"] == "ok") & (pairs["status_teacher"] == "ok")
    return pairs[["backend", "precision", "host", "ratio", "stable"]]


def speed_ratios(records: Sequence[Record]) -> list[tuple[str, str, float, bool]]:
    """(runtime, precision, SimSwap p50 / student p50, stable) for each pair of the shown run.

    ``stable`` is False when either cell is unstable (CV above 0.10) or ran too few times: such a
    ratio is printed flagged, never as a plain result. Two cells pair only when they ran on the
    same host.
    """
    pairs = _ratios(_shown(records))
    return [(str(b), str(p), float(r), bool(s))
            for b, p, r, s in zip(pairs["backend"], pairs["precision"], pairs["ratio"], pairs["stable"],
                                  strict=True)]


def render_terminal(records: Sequence[Record]) -> str:
    shown = _shown(records)
    return "\n".join([fixed_width(_titled(shown)), "", *_ratio_lines(shown)])


def _ratio_lines(frame: pd.DataFrame) -> list[str]:
    pairs = _ratios(frame)
    several = len(_hosts(frame)) > 1
    return [
        f"SimSwap / MobileFaceSwap video-mode latency ({backend}, {precision}"
        f"{f', host {host}' if several else ''}): {ratio:.0f}× "
        f"(paper, on a Dimensity 1100 phone: {PAPER_RATIO:.0f}×)"
        + ("" if stable else " — UNSTABLE: a cell of the pair has CV > 0.10 or too few runs; re-run before "
           "quoting it")
        for backend, precision, host, ratio, stable in pairs.itertuples(index=False, name=None)
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


def _by_host(frame: pd.DataFrame) -> list[tuple[str | None, pd.Index]]:
    """The shown cells' rows per host, hosts in first-seen order, when they ran on several (a cell
    without a recorded host is a group of its own); one group named None otherwise."""
    if len(_hosts(frame)) <= 1:
        return [(None, frame.index)]
    hosts = keyed_text(column(frame, "env.host"))
    return [(host or "not recorded", frame.index[hosts == host]) for host in hosts.unique()]


def _machine_lines(frame: pd.DataFrame, records: Sequence[Record]) -> list[str]:
    """Where the shown cells ran: the machine line of one host, or one line per host (a cell that
    measured something has the thread count, so the newest such cell of each host describes it)."""
    ok = set(frame.index[column(frame, "status") == "ok"])
    lines = []
    for host, rows in _by_host(frame):
        chosen = [position for position in rows if position in ok] or list(rows)
        line = machine_line(records[chosen[-1]])
        lines.append(line if host is None else f"Host {host}: {line}")
    return lines


def _markdown_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells safe inside a markdown table: a ``|`` (as in ``max |err|``) would split a cell."""
    return frame.rename(columns=lambda c: str(c).replace("|", "\\|")).map(lambda v: v.replace("|", "\\|"))


def render_markdown(records: Sequence[Record]) -> str:
    shown = _shown(records)
    cells = [records[position] for position in shown.index]
    lines = ["# Desktop latency of the video-mode frame stage", ""]
    if cells:
        machines = _machine_lines(shown, records)
        if len(machines) == 1:
            lines += [f"Run {cells[-1].run_id} (the newest in the record store; a report shows one run). "
                      + machines[0], ""]
        else:
            lines += [f"Run {cells[-1].run_id} (the newest in the record store; a report shows one run), "
                      f"its cells measured on {len(machines)} hosts (the host column says which):", ""]
            lines += [f"- {line}" for line in machines] + [""]
        lines += [f"Weights: {_one_of(cells, 'weights')}. "
                  f"Parity inputs: {_one_of(cells, 'parity_inputs')}.", ""]
    lines += markdown_lines(_markdown_cells(_titled(shown)))
    lines += ["", "## Speed ratio", ""]
    lines += [f"- {line}" for line in _ratio_lines(shown)] or ["- not measured in this run"]
    several = len(_hosts(shown)) > 1
    lines += ["", "## Peaks of each host" if several else "## Peaks of this machine", ""]
    lines += [f"- {line}" for line in _peak_lines(shown, records)] or ["- not measured"]
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


def _peak_lines(frame: pd.DataFrame, records: Sequence[Record]) -> list[str]:
    """One line per precision (and host, when the cells ran on several): the peak MAC/s measured and how."""
    lines = []
    for host, rows in _by_host(frame):
        cells = [records[position] for position in rows]
        # the last cell's: a peak re-measured during the run (a cell beat it) is the one that held
        stored = next((r.info["peaks"] for r in reversed(cells) if r.info.get("peaks")), None) or {}
        where = "" if host is None else f"{host}, "
        lines += [f"{where}{precision}: {peak['macs_per_s'] / 1e9:.1f} GMAC/s — {peak['method']}"
                  if peak.get("macs_per_s")
                  else f"{where}{precision}: none — {peak.get('method') or peak.get('reason')}"
                  for precision, peak in stored.items()]
    return lines


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
    """The shown cells as CSV: the :data:`COLUMNS` keys and the error, values as recorded."""
    return csv_text(_table(_shown(records), error=True))


def render_json(records: Sequence[Record]) -> str:
    """The shown cells as a JSON list of objects, keys as in the CSV."""
    return json_text(_table(_shown(records), error=True))


def roofline_panels(records: Sequence[Record]) -> list[tuple[str | None, list[Record], dict[str, Any]]]:
    """The roofline plot's panels: ``(host, cells, peaks)`` per host the newest run's timed cells ran
    on (one panel named None when they ran on one), each with the peaks *its* host measured.

    Why per host: a cell's roofline is the peak of the machine it ran on; a sweep spread over a
    cluster (``device --engine ray``) drawn against one host's peak would put another machine's cells
    above or below a roof that was never theirs.
    """
    cells = [r for r in latest_cells(records) if r.status == "ok" and r.metrics.get("gmacs")
             and r.metrics.get("fps_p50")]
    groups: dict[str | None, list[Record]] = {}
    for record in cells:
        host = record.env.get("host")
        groups.setdefault(str(host) if host else None, []).append(record)
    several = len(groups) > 1
    panels = []
    for host, group in groups.items():
        peaks = next((r.info["peaks"] for r in reversed(group) if r.info.get("peaks")), None) or {}
        panels.append(((host or "not recorded") if several else None, group, peaks))
    return panels


def plot_roofline(records: Sequence[Record], path: Path) -> Path | None:
    """FPS against GMACs per frame (log-log) with the roofline FPS = peak MAC/s ÷ MACs, one panel per
    host (:func:`roofline_panels`)."""
    from mfsbench.report.plots import pyplot

    panels = roofline_panels(records)
    if not panels:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 5.5), squeeze=False)
    for axis, (host, cells, peaks) in zip(axes[0], panels, strict=True):
        for record in cells:
            label = f"{record.model} {record.info.get('backend')} {record.info.get('precision')}"
            axis.scatter(record.metrics["gmacs"], record.metrics["fps_p50"], label=label)
        low = min(r.metrics["gmacs"] for r in cells) / 2
        high = max(r.metrics["gmacs"] for r in cells) * 2
        for (precision, peak), style in zip(peaks.items(), ("k--", "k:", "k-."), strict=False):
            rate = peak.get("macs_per_s")
            if rate:
                axis.plot([low, high], [rate / (low * 1e9), rate / (high * 1e9)], style,
                          label=f"{precision} roofline ({rate / 1e9:.0f} GMAC/s peak)")
        if host is not None:
            axis.set_title(f"host {host}: its cells against its own peaks", fontsize=9)
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
