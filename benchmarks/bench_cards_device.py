"""The zoo student's frame stage as a model card, timed by `mfsbench device` beside the zoo entry itself.

Why: a card goes through the device axis without an export step (its ONNX file is the artefact,
parity against ONNX Runtime fp32 on that file); timed on the same runtimes in the same run, the card
and the zoo entry should show the same MACs and latencies within noise. The student is exported with
seeded weights (the zoo cells use the same seed) after the same exact rewrites as the zoo's exporter,
so both graphs hold the same numbers and the same matrix MACs.

Usage: ``python benchmarks/bench_cards_device.py [OUT]`` (default ``reports/bench_cards_device``).
Prints one line per (model, runtime, precision): p50, MACs run, efficiency, parity.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.cards_fixtures: the one card template


def main() -> int:
    from mfsbench.cli.main import main as cli
    from mfsbench.device.sweep import WeightsRef, build_frame_stage
    from mfsbench.export.onnx import export_onnx
    from mfsbench.export.stages import export_ready
    from mfsbench.records import read_records
    from mfsbench.registry import get_spec
    from tests.cards_fixtures import write_student_card

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/bench_cards_device")
    spec = get_spec("mobilefaceswap_224")
    with tempfile.TemporaryDirectory(prefix="mfsbench-bench-card-") as tmp:
        folder = Path(tmp)
        module, example, _ = build_frame_stage(spec, spec.native_size, WeightsRef(seed=0))
        module = export_ready(module)  # the exact rewrites the zoo cells' exporter applies
        with torch.no_grad():
            outputs = module(*example)
        count = len(outputs) if isinstance(outputs, tuple) else 1
        export_onnx(module, example, folder / "frame.onnx", ["target"], [f"output_{i}" for i in range(count)])
        card = write_student_card(folder / "student_card.toml", folder / "frame.onnx", card_id="student_card",
                                  size=spec.native_size,
                                  description="the zoo student's frame stage, exported with seeded weights")
        code = cli(["device", "--models", str(card), "mobilefaceswap_224", "--backends", "onnxruntime",
                    "openvino", "--precision", "fp32", "int8", "--runs", "30", "--out", str(out),
                    "--format", "csv"])
    records = read_records(out / "records.jsonl")
    run = records[-1].run_id
    for r in (r for r in records if r.run_id == run):
        m = r.metrics
        print(f"{r.model:20s} {r.info.get('backend'):12s} {r.info.get('precision'):5s} {r.status:8s} "
              f"p50 {m.get('p50_ms', float('nan')):8.2f} ms  MACs {r.info.get('macs_executed')}  "
              f"eff {m.get('efficiency', float('nan')):.3f}  "
              f"max|err| {m.get('max_abs_err', float('nan')):.2e}  "
              f"PSNR {m.get('psnr_db', float('nan')):.1f}  {r.error or ''}")
    return code


if __name__ == "__main__":
    sys.exit(main())
