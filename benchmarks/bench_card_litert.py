"""A model card on LiteRT (issue 17 item 3): onnx2tf conversion time, and parity and latency of the file.

What runs (needs the ``cards-tflite`` extra):

1. the tiny inswapper-like card graph of the tests (``tests/cards_fixtures.py``) converted to fp32
   ``.tflite`` into an empty per-user cache (cold: the child process's TensorFlow start-up included,
   reported apart);
2. the zoo student's frame stage (``mobilefaceswap_224``, seeded random weights, one source identity
   injected from a real face photo) exported as ``mfsbench export`` does (``export_ready`` + the exact
   optimiser; ``tests/test_cards_parity.py``), described by a card, converted the same way;
3. ``mfsbench device --models STUDENT_CARD --backends litert onnxruntime --precision fp32 int8``: the
   converted file (and its ai-edge-quantizer int8) timed with parity against ONNX Runtime fp32 on the
   card's file, fed in the file's NHWC layout, beside ONNX Runtime on the same card.

Run: ``.venv/bin/python benchmarks/bench_card_litert.py [OUT]`` (default ``reports/bench_card_litert``;
prints one JSON object). The cache is a temporary folder, so every conversion here is a cold one.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _convert(card: Path) -> dict[str, Any]:
    from mfsbench.device.card import graph_input_names
    from mfsbench.export.card import card_artifact
    from mfsbench.registry import get_spec

    spec = get_spec(str(card))
    loaded = spec.card
    assert loaded is not None
    names = graph_input_names(spec)
    static = loaded.static_inputs()
    started = time.perf_counter()
    artifact = card_artifact(loaded.swapper_path, loaded.sha256["swapper"], "tflite", "fp32",
                             input_names=names, output_names=tuple(o.name for o in loaded.outputs),
                             input_shapes={n: static[n] for n in names})
    wall = time.perf_counter() - started
    d = artifact.details
    return {"onnx_mb": round(loaded.swapper_path.stat().st_size / 1e6, 3),
            "tflite_mb": round(artifact.size_mb, 3),
            "wall_s": round(wall, 2), "child_import_s": d["import_s"], "child_convert_s": d["convert_s"],
            "converter": d["converter"], "layout": {i["file"]: i["layout"] for i in d["layout"]["inputs"]}}


def main() -> int:
    import torch

    from mfsbench.cards import license as card_license
    from mfsbench.faces.detectors import get_detector, read_image
    from mfsbench.quality.face_photos import fetch_face_photos
    from mfsbench.records import read_records
    from mfsbench.registry import create_model, get_spec
    from mfsbench.swap.pipeline import SwapPipeline
    from tests.cards_fixtures import inswapper_like
    from tests.conftest import cli_in_process
    from tests.test_cards_parity import export_student_card

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/bench_card_litert")
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mfsbench-bench-card-litert-") as tmp:
        folder = Path(tmp)
        os.environ["MFSBENCH_ARTIFACT_CACHE"] = str(folder / "cache")
        card_license.accept_licenses()  # the tiny graph borrows inswapper's non-commercial example card
        tiny = folder / "tiny"
        tiny.mkdir()
        inswapper_like(tiny / "inswapper_128.onnx")
        examples = Path(__file__).resolve().parents[1] / "examples" / "cards" / "inswapper_128.toml"
        import hashlib

        digest = hashlib.sha256((tiny / "inswapper_128.onnx").read_bytes()).hexdigest()
        lines = [f'sha256 = "{digest}"' if line.startswith("sha256")
                 else line.replace("${MFS_MODELS}/inswapper_128.onnx", "inswapper_128.onnx")
                 for line in examples.read_text().splitlines()]
        (tiny / "card.toml").write_text("\n".join(lines) + "\n")
        result["tiny_card"] = _convert(tiny / "card.toml")

        spec = get_spec("mobilefaceswap_224")
        torch.manual_seed(0)
        zoo = SwapPipeline(spec, create_model(spec.name), get_detector("dlib"), spec.native_size)
        zoo.inject(read_image(fetch_face_photos()["biden"].path))
        card = export_student_card(zoo.runner, spec.name, folder, deployed=True)
        result["student_card"] = _convert(card)

        code = cli_in_process("device", "--models", str(card), "--backends", "litert", "onnxruntime",
                              "--precision", "fp32", "int8", "--runs", "30", "--out", str(out),
                              "--format", "csv").code
    records = read_records(out / "records.jsonl")
    run = records[-1].run_id
    result["device"] = [{
        "backend": r.info.get("backend"), "precision": r.info.get("precision"), "status": r.status,
        "p50_ms": r.metrics.get("p50_ms"), "max_abs_err": r.metrics.get("max_abs_err"),
        "psnr_db": r.metrics.get("psnr_db"), "executed": r.info.get("executed_precision"),
        "io_layout": r.info.get("io_layout"), "error": r.error} for r in records if r.run_id == run]
    result["device_exit_code"] = code
    print(json.dumps(result, indent=2))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
