"""``mfsbench export``: one model stage to ONNX / OpenVINO IR / TFLite, checked against torch.

The artifact is written to ``OUT`` and an ``export`` record with the parity numbers is appended to
``OUT/records.jsonl``. An export outside tolerance is kept on disk (to inspect) but recorded as an
``error`` and exits 1: a converted file that computes something else must not pass silently.
int8 needs ``--calibration`` photos: their faces are detected and aligned like the swap pipeline's,
because activation ranges calibrated on noise are not the ranges faces produce.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from mfsbench.cli.common import writable_dir
from mfsbench.errors import BadInputError, MfsbenchError
from mfsbench.records import Record, append_records, new_run_id, stamp


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name (see `mfsbench models --all`)")
    # validated by the exporter registry, so a bad value is one line naming the choices
    parser.add_argument("--format", required=True, help="onnx | openvino | tflite")
    parser.add_argument("--precision", default="fp32", help="fp32 | fp16 | int8 (default fp32)")
    parser.add_argument("--stage", default="frame", help="frame (video mode) | identity (default frame)")
    parser.add_argument("--out", required=True, help="directory for the artifact and records.jsonl")
    parser.add_argument("--size", type=int, default=None, help="frame size (default: native size)")
    parser.add_argument(
        "--calibration",
        nargs="+",
        default=None,
        metavar="IMG",
        help="face photos for int8 calibration (faces detected with dlib and aligned)",
    )
    parser.set_defaults(run=run)


Samples = list[tuple[Any, ...]]


def _calibration(spec: Any, paths: list[str], size: int) -> tuple[Samples, Samples]:
    """``(calibration, held_out)`` frame-stage inputs from the faces in ``paths``, aligned and scaled
    as the model's own swap pipeline does (its adapter), so the calibrated ranges are the ranges the
    stage will see. With two or more photos holding faces, every other photo is held out of the
    calibration for the parity check; with one, ``held_out`` is empty and parity is in-sample."""
    from mfsbench.export.stages import face_crops_per_photo, frame_stage_inputs
    from mfsbench.faces.detectors import read_image

    per_photo = [c for c in face_crops_per_photo(spec, size, [read_image(path) for path in paths]) if c]
    if not per_photo:
        raise BadInputError("no face found in the --calibration photos; pass photos with visible faces")
    if len(per_photo) == 1:
        return frame_stage_inputs(spec, size, per_photo[0]), []
    flat = [[crop for crops in groups for crop in crops] for groups in (per_photo[0::2], per_photo[1::2])]
    return frame_stage_inputs(spec, size, flat[0]), frame_stage_inputs(spec, size, flat[1])


def run(args: argparse.Namespace) -> int:
    from mfsbench.export.base import PRECISIONS, get_exporter
    from mfsbench.registry import get_spec

    exporter = get_exporter(args.format)
    if args.precision not in PRECISIONS:
        raise BadInputError(f"unknown precision {args.precision!r}; choose one of {', '.join(PRECISIONS)}")
    exporter.check_precision(args.precision)
    spec = get_spec(args.model)
    if not spec.runnable:
        raise BadInputError(f"{spec.name} has no runnable network to export; pick a model with code")
    if args.stage not in spec.stage_names:
        raise BadInputError(
            f"{spec.name} has no {args.stage!r} stage; choose one of {', '.join(spec.stage_names)}"
        )
    size = args.size or spec.native_size
    spec.check_size(size)
    shapes = spec.stage(args.stage).input_shapes(size)
    calibration, held_out = None, None
    if args.precision == "int8":
        if not args.calibration:
            raise BadInputError("int8 needs --calibration IMG ... (face photos) to calibrate activations")
        if len(shapes) != 1:
            raise BadInputError(
                f"int8 calibration from photos needs a one-input stage; {args.stage} has {len(shapes)}"
            )
        calibration, held_out = _calibration(spec, args.calibration, size)
    out = writable_dir(args.out)
    record = export_record(
        spec.name, args.stage, size, exporter=exporter, precision=args.precision, out=out,
        calibration=calibration, held_out=held_out,
    )
    append_records(out / "records.jsonl", stamp([record], new_run_id()))
    if record.status == "error":
        what = f"{record.model} {args.stage} {args.format} {args.precision}"
        print(f"error: {what}: {record.error}", file=sys.stderr)
        return 1
    m = record.metrics
    print(
        f"{record.info['path']}  {m['size_mb']:.2f} MB  max_abs_err {m['max_abs_err']:.3g}  "
        f"psnr {m['psnr_db']:.1f} dB  ({record.info['runtime']})"
    )
    return 0


def export_record(
    model: str,
    stage: str,
    size: int,
    *,
    exporter: Any,
    precision: str,
    out: Path,
    calibration: list[tuple[Any, ...]] | None = None,
    held_out: list[tuple[Any, ...]] | None = None,
) -> Record:
    """Export, check parity and describe both in one record (status ``error`` on any failure).

    int8 parity runs on ``held_out`` face crops (photos the calibration never saw) when there are
    any, else on the calibration crops, and the record says which (``parity_inputs``); it never
    mixes in noise inputs, whose error says nothing about faces.
    """
    import torch

    from mfsbench.export.parity import TOLERANCES, check_parity
    from mfsbench.export.stages import SEED, random_inputs, stage_input_names, stage_module
    from mfsbench.registry import create_model, get_spec

    spec = get_spec(model)
    shapes = spec.stage(stage).input_shapes(size)
    record = Record(
        command="export",
        model=model,
        stage=stage,
        mode="video" if stage == "frame" else None,
        input_shapes={k: list(v) for k, v in shapes.items()},
        info={"format": exporter.name, "precision": precision, "size": size,
              "weights": f"random, seed {SEED}", "tolerance": list(TOLERANCES[precision])},
    )
    started = time.perf_counter()
    try:
        torch.manual_seed(SEED)  # no checkpoint yet: seeded random weights make reruns comparable
        module, example = stage_module(spec, create_model(model), stage, size)
        stem = f"{model}_{stage}_{size}_{precision}"
        artifact = exporter.export(
            module, example, out, precision, input_names=stage_input_names(spec, stage),
            calibration=calibration, stem=stem,
        )
        export_s = time.perf_counter() - started
        if precision == "int8":
            samples = list(held_out or calibration or [])
            record.info["parity_inputs"] = (f"held out: {len(samples)} face crop(s) from photos not used "
                                            "for calibration" if held_out else
                                            f"in-sample: the {len(samples)} calibration crop(s) (one photo "
                                            "with faces; pass two or more for a held-out check)")
        else:
            samples = [example, random_inputs(shapes.values(), seed=1)]
            record.info["parity_inputs"] = "the example input and one seeded uniform random input"
        parity = check_parity(module, artifact, samples)
    except MfsbenchError as exc:
        if isinstance(exc, BadInputError):
            raise
        record.status, record.error = "error", str(exc)
        return record
    except Exception as exc:  # a failed conversion is a result, recorded as such
        record.status, record.error = "error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        return record
    record.metrics = {**parity.metrics(), "size_mb": artifact.size_mb, "export_s": round(export_s, 2)}
    record.info.update(
        path=str(artifact.path),
        files=[str(f) for f in artifact.files],
        sha256=artifact.sha256,
        input_names=list(artifact.input_names),
        output_names=list(artifact.output_names),
        runtime=parity.runtime,
        parity_samples=parity.samples,
        outputs=[vars(o) for o in parity.outputs],
    )
    failure = parity.failure()
    if failure:
        record.status, record.error = "error", failure
    return record
