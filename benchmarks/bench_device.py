"""Benchmark: the desktop targets of issue 15 on the student and SimSwap, as ratios from one run.

Every cell goes through :func:`mfsbench.device.sweep.measure_model` (a fresh process per cell, parity
through the timed session, executed precision read back), exactly as ``mfsbench device`` does.
Targets, each printed as measured / target (≥ 1 meets it) or as "does not apply here" with the reason:

* student, best fp32 cell: efficiency ≥ 0.6 of this machine's measured fp32 peak (MACs of the graph
  that ran, p50);
* on a CPU with int8 dot products (VNNI/AMX/dotprod): student int8 ≥ 1.5× the best fp32 cell of the
  same run, PSNR ≥ 35 dB on held-out crops;
* on a CPU with AVX512_BF16 or AMX: SimSwap bf16 ≥ 1.3× fp32 on OpenVINO, PSNR ≥ 40 dB;
* SimSwap / student latency ≥ 100× on the same runtime at the same precision;
* on an AVX2-only CPU the same sweep runs and the bf16/int8 cells say they are not native.

Faces: ``--faces DIR``, else the registry face photos (as ``mfsbench device``). A benchmark, not a
test: it reports and does not fail on a slow machine (exit 1 only when a cell errors). Takes a few
minutes on 2 cores. The fastest run is printed beside the median: on a shared VM a large gap between
the two says the run was contended.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mfsbench.records import Record

STUDENT, TEACHER = "mobilefaceswap_224", "simswap_224"
EFFICIENCY, INT8_SPEEDUP, INT8_PSNR_DB, BF16_SPEEDUP, BF16_PSNR_DB, RATIO = 0.6, 1.5, 35.0, 1.3, 40.0, 100.0
RUNTIMES = ("onnxruntime", "openvino", "litert")


def _line(record: Record) -> str:
    m = record.metrics
    text = f"  {record.model:20s} {record.info['backend']:12s} {record.info['precision']:12s} "
    if record.status == "ok":
        eff = m.get("efficiency")
        text += (f"p50 {m['p50_ms']:8.2f} ms  fastest {m.get('min_ms', float('nan')):8.2f} ms  "
                 f"cv {m.get('cv', float('nan')):.2f}  executed {record.info.get('executed_precision')}  "
                 f"psnr {m.get('psnr_db', float('nan')):.1f} dB  eff {eff if eff is None else round(eff, 3)}")
        if record.info.get("native_note"):
            text += "  (not native)"
    else:
        text += f"{record.status}: {record.error}"
    return text


def _targets(records: list[Record], runtimes: list[str], isa: list[str], *, held_out: bool) -> None:
    """Print each target as measured / target, or why it does not apply to this CPU."""
    from mfsbench.records import INT8_DOT_FEATURES

    ok = {(r.model, r.info["backend"], r.info["precision"]): r
          for r in records if r.status == "ok"}
    fp32 = {b: r for (m, b, p), r in ok.items() if m == STUDENT and p == "fp32"}
    best = min(fp32, key=lambda b: fp32[b].metrics["p50_ms"]) if fp32 else None
    if best is not None and fp32[best].metrics.get("efficiency") is not None:
        eff = fp32[best].metrics["efficiency"]
        print(f"  student best fp32 ({best}) efficiency {eff:.3f} / target {EFFICIENCY}: "
              f"{eff / EFFICIENCY:.2f}")
    else:
        print("  student best fp32 efficiency: not measured")
    int8 = {b: r for (m, b, p), r in ok.items() if m == STUDENT and p == "int8"}
    vnni = any(f in isa for f in INT8_DOT_FEATURES)
    if best is not None and int8:
        fastest = min(int8, key=lambda b: int8[b].metrics["p50_ms"])
        speedup = fp32[best].metrics["p50_ms"] / int8[fastest].metrics["p50_ms"]
        psnr = int8[fastest].metrics["psnr_db"]
        held = "held out" if held_out else "IN-SAMPLE"
        verdict = (f"/ target {INT8_SPEEDUP}x: {speedup / INT8_SPEEDUP:.2f}; PSNR / {INT8_PSNR_DB:.0f} dB: "
                   f"{psnr / INT8_PSNR_DB:.2f}" if vnni else
                   "target does not apply: this CPU has no int8 dot-product instructions")
        print(f"  student int8 ({fastest}) vs best fp32 ({best}): {speedup:.2f}x at {psnr:.1f} dB {held}; "
              f"{verdict}")
    else:
        print("  student int8: not measured")
    bf16, tfp32 = ok.get((TEACHER, "openvino", "bf16")), ok.get((TEACHER, "openvino", "fp32"))
    if bf16 is not None and tfp32 is not None:
        speedup = tfp32.metrics["p50_ms"] / bf16.metrics["p50_ms"]
        print(f"  SimSwap bf16 vs fp32 on OpenVINO: {speedup:.2f}x / target {BF16_SPEEDUP}x: "
              f"{speedup / BF16_SPEEDUP:.2f}; PSNR {bf16.metrics['psnr_db']:.1f} / {BF16_PSNR_DB:.0f} dB")
    else:
        bf16_teacher = (r for r in records if r.model == TEACHER and r.info["precision"] == "bf16")
        why = next((r.error for r in bf16_teacher), "not run")
        print(f"  SimSwap bf16: not measured here ({why})")
    for runtime in runtimes:
        for precision in ("fp32", "bf16"):
            s_cell, t_cell = ok.get((STUDENT, runtime, precision)), ok.get((TEACHER, runtime, precision))
            if s_cell is None or t_cell is None:
                continue
            ratio = t_cell.metrics["p50_ms"] / s_cell.metrics["p50_ms"]
            unstable = s_cell.metrics.get("unstable") or t_cell.metrics.get("unstable")
            flag = " (UNSTABLE)" if unstable else ""
            print(f"  SimSwap / student latency ({runtime}, {precision}, same run): {ratio:.0f}x / target "
                  f"{RATIO:.0f}x: {ratio / RATIO:.2f}{flag}")


def main(argv: list[str] | None = None) -> int:
    from mfsbench.device.roofline import measure_peaks
    from mfsbench.device.runtimes import available_runtimes
    from mfsbench.device.sweep import SweepSettings, face_sample_sets, measure_model
    from mfsbench.records import cpu_isa
    from mfsbench.registry import get_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=None, help="folder of face photos")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="minimum timed seconds per student cell")
    parser.add_argument("--teacher-runs", type=int, default=5)
    args = parser.parse_args(argv)
    installed = set(available_runtimes())
    runtimes = [r for r in RUNTIMES if r in installed]
    if not runtimes:
        print("no runtime installed (onnxruntime, openvino, ai-edge-litert)", file=sys.stderr)
        return 1
    isa = cpu_isa() or []
    student = SweepSettings(args.threads, warmup=10, runs=100, min_seconds=args.seconds, max_seconds=30.0)
    teacher = SweepSettings(args.threads, warmup=1, runs=args.teacher_runs, min_seconds=0.0, max_seconds=60.0)
    started = time.perf_counter()
    peaks = measure_peaks(threads=args.threads)
    spec, tspec = get_spec(STUDENT), get_spec(TEACHER)
    samples = face_sample_sets(spec, spec.native_size, args.faces)
    student_cells = [(r, p) for r in runtimes for p in ("fp32", "int8")] + [("openvino", "bf16")]
    teacher_cells = [(r, "fp32") for r in runtimes] + [("openvino", "bf16")]
    with tempfile.TemporaryDirectory(prefix="mfsbench-bench-device-") as work:
        records = measure_model(spec, spec.native_size, cells=student_cells, settings=student,
                                work_dir=Path(work), samples=samples, peaks=peaks)
        tsamples = face_sample_sets(tspec, tspec.native_size, args.faces, limit=2)
        teacher_records = measure_model(tspec, tspec.native_size, cells=teacher_cells, settings=teacher,
                                        work_dir=Path(work), samples=tsamples, peaks=peaks)
    wall = time.perf_counter() - started
    print(f"bench_device: {STUDENT} and {TEACHER} video-mode frame stage, {args.threads} threads; "
          f"CPU ISA: {' '.join(isa) or 'unknown'}; {samples.note}; {wall:.0f} s")
    for precision, peak in peaks.items():
        print(f"  peak {precision}: {peak.macs_per_s / 1e9:.1f} GMAC/s — {peak.method}")
    for precision, why in peaks.unavailable.items():
        print(f"  peak {precision}: none — {why}")
    for record in records + teacher_records:
        print(_line(record))
    _targets(records + teacher_records, runtimes, isa, held_out=samples.held_out)
    failed = [r for r in records + teacher_records if r.status == "error"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
