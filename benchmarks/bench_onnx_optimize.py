"""Benchmark: the ONNX export unoptimised vs optimised (:func:`mfsbench.export.onnx.optimize_exactly`).

For each model's frame stage (default: the student ``mobilefaceswap_224`` and ``simswap_224``) the
stage is exported twice with :func:`mfsbench.export.onnx.export_onnx` (``optimize=False`` and the
default, parity-checked optimiser), after the same exact export-time rewrites every exporter applies.
Printed per model: node counts, what the exporter recorded (optimised or not, and why), parity of
both files against torch on real aligned face crops (the sweep's check), and with ``--stock`` also
the parity of onnxscript's stock optimiser (what ``torch.onnx.export(optimize=True)`` runs).

Then latency on ONNX Runtime and OpenVINO (f32), ``--threads`` threads, timed by
:func:`mfsbench.device.timing.time_runtime`: both files are prepared once and timed in alternation
(A B, B A, ...) for ``--rounds`` rounds, because the machine is shared and a neighbour's burst must
hit both alike. Printed: the median of the rounds' p50s and the fastest single run of each, and the
ratios optimised / unoptimised measured in this run. It is a benchmark: it reports, it asserts nothing
about wall-clock time (exit 1 only when an export fails parity against torch).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = ("mobilefaceswap_224", "simswap_224")
RUNTIMES = ("onnxruntime", "openvino")


def _default_faces() -> Path | None:
    folder = Path(os.environ.get("MFSBENCH_ASSET_CACHE") or Path.home() / ".cache/mfsbench/face-assets")
    photos = [p for p in folder.glob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]
    return folder if len(photos) >= 2 else None


def _nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def _time_pair(runtime_name: str, files: dict[str, Path], inputs: Any, *, threads: int, rounds: int,
               runs: int, seconds: float) -> dict[str, dict[str, Any]]:
    """Both files prepared once, timed alternately; per variant the rounds' p50s and fastest runs."""
    from mfsbench.device.runtimes import get_runtime
    from mfsbench.device.timing import time_runtime, timed_prepare

    runtime = get_runtime(runtime_name)
    runtime.prepare(next(iter(files.values())), threads)  # loads the runtime's plugins: not an init time
    prepared, stats = {}, {}
    for variant, path in files.items():
        prepared[variant], init_ms = timed_prepare(runtime, path, threads)
        stats[variant] = {"init_ms": init_ms, "p50": [], "min": []}
    names = [info.name for info in next(iter(prepared.values())).inputs]
    feed = dict(zip(names, inputs, strict=True))
    order = list(files)
    for index in range(rounds):
        for variant in order if index % 2 == 0 else order[::-1]:
            result = time_runtime(prepared[variant], feed, warmup=2, min_runs=runs, min_seconds=seconds,
                                  max_seconds=max(seconds * 4, 30.0), threads=threads)
            metrics = result.metrics()
            stats[variant]["p50"].append(metrics["p50_ms"])
            stats[variant]["min"].append(metrics["min_ms"])
    return stats


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from mfsbench.device.sweep import face_sample_sets
    from mfsbench.export.base import ExportedArtifact
    from mfsbench.export.onnx import export_onnx, output_count
    from mfsbench.export.parity import check_parity
    from mfsbench.export.stages import export_ready, stage_input_names, stage_module
    from mfsbench.registry import create_model, get_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="alternating A/B rounds per runtime")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per round")
    parser.add_argument("--faces", type=Path, default=None, help="folder of face photos for parity")
    parser.add_argument("--stock", action="store_true",
                        help="also export with onnxscript's stock optimiser and show its parity")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    runtimes = [r for r in RUNTIMES if importlib.util.find_spec(r) is not None]
    faces = args.faces or _default_faces()
    failed = False
    with tempfile.TemporaryDirectory(prefix="mfsbench-bench-onnx-opt-") as work:
        for name in args.models:
            spec = get_spec(name)
            size = spec.native_size
            module, example = stage_module(spec, create_model(name), "frame", size)
            ready = export_ready(module)
            inputs = stage_input_names(spec, "frame")
            outputs = tuple(f"output_{i}" for i in range(output_count(ready, example)))
            samples = face_sample_sets(spec, size, faces, limit=2 if "simswap" in name else 8)
            files: dict[str, Path] = {}
            print(f"{name} frame stage at {size} ({samples.note}); {args.threads} threads")
            variants: list[tuple[str, dict[str, Any]]] = [("unoptimised", {"optimize": False}),
                                                          ("optimised", {})]
            if args.stock:
                from onnxscript.optimizer import optimize_ir

                variants.append(("stock-optimiser", {"optimizer": optimize_ir}))
            for variant, options in variants:
                path = Path(work) / f"{name}_{variant}.onnx"
                started = time.perf_counter()
                details = export_onnx(ready, example, path, inputs, outputs, **options)
                export_s = time.perf_counter() - started
                artifact = ExportedArtifact(path, "onnx", "fp32", "", inputs, outputs)
                parity = check_parity(module, artifact, samples.parity)
                verdict = parity.failure() or "within tolerance"
                print(f"  {variant:16s} {_nodes(path):5d} nodes  export {export_s:5.1f} s  vs torch on "
                      f"faces: max_abs_err {parity.max_abs_err:.3g}  {verdict}")
                keys = ("optimized", "nodes_before", "nodes_after", "optimizer_parity_max_abs_err",
                        "optimizer_parity_vs_torch_max_abs_err", "optimizer_rejected", "optimizer_error")
                print("  " + " " * 17 + ", ".join(f"{k}={details[k]!r:.80}" for k in keys if k in details))
                if variant != "stock-optimiser":
                    failed |= parity.failure() is not None
                    files[variant] = path
            sample = [np.ascontiguousarray(np.asarray(a, dtype=np.float32)[None] if np.ndim(a) == 3 else a,
                                           dtype=np.float32) for a in samples.parity[0]]
            heavy = "simswap" in name
            for runtime in runtimes:
                stats = _time_pair(runtime, files, sample, threads=args.threads, rounds=args.rounds,
                                   runs=3 if heavy else 50, seconds=0.0 if heavy else args.seconds)
                line = f"  {runtime:12s}"
                for variant, s in stats.items():
                    line += (f"  {variant}: p50 median {statistics.median(s['p50']):8.2f} ms, fastest "
                             f"{min(s['min']):8.2f} ms, init {s['init_ms']:6.0f} ms;")
                a, b = stats["unoptimised"], stats["optimised"]
                ratio = statistics.median(b["p50"]) / statistics.median(a["p50"])
                fastest = min(b["min"]) / min(a["min"])
                line += f"  optimised/unoptimised p50 {ratio:.3f}, fastest {fastest:.3f}"
                print(line)
                rounds = ", ".join(f"{x:.2f}/{y:.2f}" for x, y in zip(a["p50"], b["p50"], strict=True))
                print(f"  {'':12s}  per-round p50 unoptimised/optimised ms: {rounds}")
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
