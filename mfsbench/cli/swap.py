"""``mfsbench swap``: swap the face of a source photo into a target image or video.

Refuses to run on random weights unless ``--allow-random-weights`` says so, and then says so again in
its output and record: a swap from an untrained network is a pipeline check, not a result. A video
is written to a temporary file and renamed when complete; Ctrl-C keeps the frames swapped so far as
``OUT.partial.mp4`` (finalised, playable) and records the interrupted run, exit code 130.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mfsbench.errors import BadInputError
from mfsbench.records import Record, append_records, new_run_id, stamp

if TYPE_CHECKING:
    from mfsbench.swap.pipeline import SwapPipeline
    from mfsbench.swap.video import VideoInfo


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="zoo model with a swap pipeline")
    parser.add_argument("--source", required=True, help="photo of the identity to inject")
    parser.add_argument("--target", required=True, help="image or video to swap into")
    parser.add_argument("--out", required=True, help="output image or video path")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="official checkpoint, PATH or FORMAT=PATH (repeat per file the model needs)")
    parser.add_argument("--detector", default="default", help="face detector backend (default: offline)")
    parser.add_argument("--detector-model", default=None, help="model file for detectors that need one")
    parser.add_argument("--detector-option", action="append", default=[], metavar="KEY=INT",
                        help="detector constructor option, e.g. upsample=0 for large faces (repeatable)")
    parser.add_argument("--detect-every", type=int, default=1,
                        help="detect faces every K frames, reusing the last landmarks in between (default 1)")
    parser.add_argument("--size", type=int, default=None, help="aligned crop size (default: native)")
    parser.add_argument("--allow-random-weights", action="store_true",
                        help="run without checkpoints (untrained output; for pipeline checks only)")
    parser.add_argument("--records", default="reports/records.jsonl", help="JSONL store for the record")
    parser.set_defaults(run=run)


def _detector_options(flags: list[str]) -> dict[str, int]:
    options = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise BadInputError(f"--detector-option {flag!r} is not KEY=INT (e.g. upsample=0)")
        options[key] = int(value)
    return options


def _progress(done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    total_text = str(total) if total > 0 else "?"
    print(f"\rframe {done}/{total_text}  {rate:5.1f} fps", end="", file=sys.stderr, flush=True)


def _swap_video(pipeline: SwapPipeline, target: Path, out: Path, info: VideoInfo,
                started: float) -> tuple[int, Path | None, bool]:
    """Swap every frame of ``target`` into ``out``: (frames written, the file they are in, interrupted).

    Ctrl-C is caught here, not re-raised: the frames written so far are kept at ``partial_path(out)``
    (none written: nothing is kept, the path is None, and an older partial file stays as it was) and
    the caller still prints and records what was measured.
    """
    from mfsbench.swap.video import VideoWriter, atomic_output, iter_frames, partial_path

    frames = 0
    try:
        with atomic_output(out, keep_partial=lambda: frames > 0) as temp:
            writer = VideoWriter(temp, info)
            try:
                for frame in iter_frames(target):
                    writer.write(pipeline.swap_frame(frame))
                    frames += 1
                    _progress(frames, info.frames, started)
            finally:
                writer.close()
            print(file=sys.stderr)
            if frames == 0:
                raise BadInputError(f"no decodable frame in {target}")
    except KeyboardInterrupt:
        kept = partial_path(out)
        print(f"\nmfsbench swap: interrupted after {frames} of {info.frames} frame(s)"
              + (f"; they are in {kept}" if frames else ""), file=sys.stderr)
        return frames, kept if frames else None, True
    return frames, out, False


def run(args: argparse.Namespace) -> int:
    from mfsbench.faces.detectors import DEFAULT_DETECTOR, get_detector, read_image
    from mfsbench.registry import create_model, get_spec
    from mfsbench.swap.adapters import adapter_for
    from mfsbench.swap.checkpoints import load_checkpoints
    from mfsbench.swap.pipeline import STAGES, SwapPipeline
    from mfsbench.swap.video import is_video, probe_video, write_image

    spec = get_spec(args.model)
    adapter_for(spec)
    size = args.size or spec.native_size
    spec.check_size(size)
    source_path, target_path, out_path = Path(args.source), Path(args.target), Path(args.out)
    if is_video(target_path) != is_video(out_path):
        raise BadInputError("--target and --out must both be videos or both be images")
    if not args.checkpoint and not args.allow_random_weights:
        raise BadInputError(
            f"{spec.name} needs its official checkpoints (--checkpoint PATH ...); "
            "pass --allow-random-weights to check the pipeline with untrained weights"
        )
    source = read_image(source_path)
    info = probe_video(target_path) if is_video(target_path) else None
    model = create_model(spec.name)
    loaded = load_checkpoints(spec, model, args.checkpoint)
    detector_name = DEFAULT_DETECTOR if args.detector == "default" else args.detector
    options: dict[str, object] = {"model_path": args.detector_model} if args.detector_model else {}
    options.update(_detector_options(args.detector_option))
    pipeline = SwapPipeline(spec, model, get_detector(detector_name, **options), size, args.detect_every)
    started = time.perf_counter()
    pipeline.inject(source)
    if not loaded:
        print("WARNING: random weights (--allow-random-weights): the output is not a face swap result",
              file=sys.stderr)
    interrupted = False
    if info is None:
        write_image(out_path, pipeline.swap_frame(read_image(target_path)))
        frames = 1
    else:
        frames, out_path, interrupted = _swap_video(pipeline, target_path, out_path, info, started)
    elapsed = time.perf_counter() - started
    means = pipeline.timer.mean_ms()
    print(f"wrote {out_path or 'nothing'}: {frames} frame(s), {pipeline.frames_swapped} swapped, "
          f"{pipeline.frames_without_face} without a face")
    for stage in STAGES:
        if stage in means:
            print(f"  {stage:<14} {means[stage]:8.2f} ms/call  ({pipeline.timer.calls[stage]} calls)")
    print(f"  end to end     {frames / elapsed:8.2f} fps")
    record = Record(
        command="swap", model=spec.name, mode="video" if info else "image",
        metrics={"fps": frames / elapsed, "frames": frames, "frames_swapped": pipeline.frames_swapped,
                 "frames_without_face": pipeline.frames_without_face,
                 **{f"{s}_ms": v for s, v in means.items()}},
        input_shapes={"frame": [1, 3, size, size]},
        info={"source": str(source_path), "target": str(target_path), "out": out_path and str(out_path),
              "detector": detector_name, "detect_every": args.detect_every, "random_weights": not loaded,
              "checkpoints": [vars(c) for c in loaded],
              "video": None if info is None else vars(info)},
    )
    if interrupted:
        record.status = "error"
        record.error = (f"interrupted after {frames} frame(s); kept in {out_path}" if out_path
                        else "interrupted before the first frame; nothing kept")
    append_records(Path(args.records), stamp([record], new_run_id()))
    return 130 if interrupted else 0
