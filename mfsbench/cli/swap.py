"""``mfsbench swap``: swap the face of a source photo into a target image or video.

Refuses to run on random weights unless ``--allow-random-weights`` says so, and then says so again in
its output and record: a swap from an untrained network is a pipeline check, not a result. A video
is written as ``OUT.partial.mp4`` and renamed when complete; Ctrl-C (exit 130) or SIGTERM (143) keeps
the frames swapped so far there (finalised, playable) and records the interrupted run.
``--resume`` continues from that file: its frames are copied (as packets when the encoder settings
match, else re-encoded; :mod:`mfsbench.swap.av_resume`) and only the rest of the target is swapped.

Nothing the user had is lost: an ``--out`` that is ``--source`` or ``--target`` (same inode) is
refused, and ``--out`` and ``--records`` are proven writable, before any work
(:mod:`mfsbench.cli.outputs`). An image target without a face is an error (exit 2, nothing written,
the record says why); a video whose frames all lack a face is written unswapped with one warning.

Which faces are swapped is ``--face one|many|reference`` (:mod:`mfsbench.swap.selection`: the most
prominent face where the target starts and then that same person, every face, or the faces of the
``--reference-face`` person) and ``--face-index`` (left to right); in a video the faces are tracked
between detections (:mod:`mfsbench.swap.tracking`). The record states the mode, the reference and
its threshold, ``detect_every``, the detections run against the frames, and the tracks seen.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfsbench.cli.common import add_license_option, apply_license_option
from mfsbench.cli.outputs import check_output_file, check_records_file, refuse_overwriting_inputs
from mfsbench.errors import BadInputError
from mfsbench.records import Record, append_records, new_run_id, stamp

if TYPE_CHECKING:
    from mfsbench.faces.detectors import FaceDetector
    from mfsbench.swap.pipeline import SwapPipeline
    from mfsbench.swap.video_run import VideoSwap


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="zoo model with a swap pipeline, or a model card (card.toml path or a card id "
                             "in $MFSBENCH_CARDS) run with ONNX Runtime")
    parser.add_argument("--source", required=True, help="photo of the identity to inject")
    parser.add_argument("--target", required=True, help="image or video to swap into")
    parser.add_argument("--out", required=True, help="output image or video path")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="official checkpoint, PATH or FORMAT=PATH (repeat per file the model needs); "
                             "for a card: the suite ArcFace's weights (arcface_tar= or arcface_pdparams=) "
                             "that make its identity embedding")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime"), default=None,
                        help="what runs the frame stage: torch (zoo default) or onnxruntime (a zoo model's "
                             "frame stage exported once per identity to the per-user cache; a card always "
                             "runs in onnxruntime)")
    add_license_option(parser)
    parser.add_argument("--detector", default="default", help="face detector backend (default: offline)")
    parser.add_argument("--detector-model", default=None, help="model file for detectors that need one")
    parser.add_argument("--detector-option", action="append", default=[], metavar="KEY=INT",
                        help="detector constructor option, e.g. upsample=0 for large faces (repeatable)")
    from mfsbench.swap.selection import DEFAULT_REFERENCE_THRESHOLD, FACE_MODES
    from mfsbench.swap.tracking import DEFAULT_DETECT_EVERY

    parser.add_argument("--face", choices=FACE_MODES, default="one",
                        help="which faces to swap: one = the most prominent face (largest visible box) "
                             "where the target starts, then that same person; many = every face; "
                             "reference = the person of --reference-face (default one)")
    parser.add_argument("--face-index", type=int, default=None, metavar="N",
                        help="with --face one: swap the N-th face counted left to right from 0, in the "
                             "image or the first video frame with a face (then that person)")
    parser.add_argument("--reference-face", default=None, metavar="IMAGE",
                        help="with --face reference: a photo of the person whose face is swapped")
    parser.add_argument("--reference-threshold", type=float, default=DEFAULT_REFERENCE_THRESHOLD,
                        help="largest identity distance (unit dlib ResNet descriptors, 0-2) taken as the "
                             f"reference's person (default {DEFAULT_REFERENCE_THRESHOLD})")
    parser.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY,
                        help="in a video, detect faces every K frames and track them in between; a lost "
                             f"track is detected again at once (default {DEFAULT_DETECT_EVERY})")
    parser.add_argument("--size", type=int, default=None, help="aligned crop size (default: native)")
    parser.add_argument("--allow-random-weights", action="store_true",
                        help="run without checkpoints (untrained output; for pipeline checks only)")
    parser.add_argument("--records", default="reports/records.jsonl", help="JSONL store for the record")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted video swap from OUT.partial.mp4: copy its frames "
                             "(packet copy, or re-encoded if --codec/--crf changed) and swap only the rest")
    from mfsbench.swap.video_run import add_output_options

    add_output_options(parser)
    parser.set_defaults(run=run)


def _build_detector(args: argparse.Namespace, *, video: bool) -> tuple[str, dict[str, object], FaceDetector]:
    """The detector's name, the options it was built with, and the detector.

    A video starts from the detector's video defaults (dlib: no 640-px floor on the detection copy,
    see :func:`~mfsbench.faces.detectors.video_detector_options`); the user's options win.
    """
    from mfsbench.faces.detectors import DEFAULT_DETECTOR, get_detector, video_detector_options

    name = DEFAULT_DETECTOR if args.detector == "default" else args.detector
    options: dict[str, object] = video_detector_options(name) if video else {}
    if args.detector_model:
        options["model_path"] = args.detector_model
    options.update(_detector_options(args.detector_option))
    return name, options, get_detector(name, **options)


class _Weights:
    """What a card's identity encoder ran with, in the record's ``checkpoints`` list."""

    def __init__(self, encoder: dict[str, object]) -> None:
        self.encoder = encoder.get("encoder")
        self.weights = encoder.get("weights")


def _detector_options(flags: list[str]) -> dict[str, int]:
    options = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise BadInputError(f"--detector-option {flag!r} is not KEY=INT (e.g. upsample=0)")
        options[key] = int(value)
    return options


def _swap_image(pipeline: SwapPipeline, target: Path, out: Path, records: Path, failed: Record) -> VideoSwap:
    """Swap the face of an image target into ``out``.

    A target in which no face is found is an error, not a copy of the target under a new name:
    nothing is written, and ``failed`` (the run's record, without metrics) is stored saying so.

    Raises:
        BadInputError: no face found in ``target``.
    """
    from mfsbench.faces.detectors import read_image
    from mfsbench.swap.video import write_image
    from mfsbench.swap.video_run import VideoSwap

    swapped = pipeline.swap_frame(read_image(target))
    if pipeline.frames_swapped == 0:
        found = pipeline.tracker.tracks_seen
        problem = f"no face found in the target {target}"
        fix = "use a photo with a clearly visible face, or another --detector"
        if found:  # faces, but none of the reference's person
            problem = (f"none of the {found} face(s) in the target {target} is the --reference-face person "
                       f"(identity distance within --reference-threshold {pipeline.selection.threshold})")
            fix = "check the reference photo, or raise --reference-threshold"
        failed.status, failed.error = "error", f"{problem}; nothing written"
        failed.metrics = {"frames": 1, "frames_swapped": 0, "frames_without_face": 1, "detections": 1,
                          "tracks_seen": found}
        append_records(records, stamp([failed], new_run_id()))
        raise BadInputError(f"{problem}; nothing written to {out} ({fix})")
    write_image(out, swapped)
    return VideoSwap(frames=1, path=out)


def _build_model(spec: Any, args: argparse.Namespace, size: int) -> tuple[Any, list[Any]]:
    """The model (a zoo network, its ONNX Runtime runner, or a card's ONNX runner) and the weights it
    loaded ([] = random). For a card, ``--checkpoint`` is its identity encoder's weights."""
    if spec.card is not None:
        if args.runtime == "torch":
            raise BadInputError(f"{spec.name} is a model card: it runs in onnxruntime only; "
                                "drop --runtime torch")
        from mfsbench.swap.runners import card_runner

        runner = card_runner(spec, args.checkpoint, allow_random=args.allow_random_weights)
        encoder = runner.describe().get("identity_encoder") or {}
        return runner, ([] if encoder.get("random_weights") else [_Weights(encoder)])
    from mfsbench.registry import create_model
    from mfsbench.swap.checkpoints import load_checkpoints

    model = create_model(spec.name)
    loaded = load_checkpoints(spec, model, args.checkpoint)
    if args.runtime == "onnxruntime":
        from mfsbench.swap.runners import OnnxZooRunner

        return OnnxZooRunner(spec, model, size), loaded
    return model, loaded


def _resolve_spec(args: argparse.Namespace) -> Any:
    """``--model``'s spec, a card's after its sha256 and licence checks (``--accept-license`` first)."""
    from mfsbench.registry import get_spec
    from mfsbench.swap.adapters import adapter_for

    apply_license_option(args)
    spec = get_spec(args.model)
    adapter_for(spec)
    if spec.card is not None and args.size not in (None, spec.native_size):
        raise BadInputError(f"--size {args.size}: the card {spec.card.card.path} runs at its `target.size` "
                            f"{spec.native_size} only; drop --size")
    return spec


def run(args: argparse.Namespace) -> int:
    from mfsbench.faces.detectors import read_image
    from mfsbench.swap.pipeline import STAGES, SwapPipeline
    from mfsbench.swap.selection import ReferenceIdentity, Selection
    from mfsbench.swap.video import is_video, probe_video
    from mfsbench.swap.video_run import output_options, resumable_partial, swap_video

    spec = _resolve_spec(args)
    size = args.size or spec.native_size
    spec.check_size(size)
    source_path, target_path, out_path = Path(args.source), Path(args.target), Path(args.out)
    reference_path = Path(args.reference_face) if args.reference_face else None
    selection = Selection(args.face, args.face_index, reference_path, args.reference_threshold)
    # before any work: the output must not be an input, and the output and record must be writable
    inputs = {"--source": source_path, "--target": target_path}
    if reference_path is not None:
        inputs["--reference-face"] = reference_path
    refuse_overwriting_inputs(out_path, inputs)
    refuse_overwriting_inputs(Path(args.records), {**inputs, "--out": out_path}, flag="--records")
    check_output_file(out_path, example="out.mp4" if is_video(target_path) else "out.png")
    check_records_file(Path(args.records))
    if is_video(target_path) != is_video(out_path):
        raise BadInputError("--target and --out must both be videos or both be images")
    has_weights = spec.card is not None or spec.weights_card is not None or bool(args.checkpoint)
    if not has_weights and not args.allow_random_weights:
        raise BadInputError(
            f"{spec.name} needs its official checkpoints (--checkpoint PATH ...); "
            "pass --allow-random-weights to check the pipeline with untrained weights"
        )
    source = read_image(source_path)
    info = probe_video(target_path) if is_video(target_path) else None
    if args.resume and info is None:
        raise BadInputError("--resume continues an interrupted video swap; an image has nothing to resume")
    resume_from = resumable_partial(target_path, out_path, info) if args.resume and info else None
    encoding = output_options(args) if info is not None else None  # --codec/--crf checked before any work
    model, loaded = _build_model(spec, args, size)
    detector_name, options, detector = _build_detector(args, video=info is not None)
    reference = ReferenceIdentity.from_photo(reference_path, detector) if reference_path else None
    pipeline = SwapPipeline(spec, model, detector, size, args.detect_every, selection=selection,
                            reference=reference)
    started = time.perf_counter()
    pipeline.inject(source)
    if not loaded:
        print("WARNING: random weights (--allow-random-weights): the output is not a face swap result",
              file=sys.stderr)
    if info is None:
        done = _swap_image(pipeline, target_path, out_path, Path(args.records), Record(
            command="swap", model=spec.name, mode="image", input_shapes={"frame": [1, 3, size, size]},
            info={"source": str(source_path), "target": str(target_path), "out": None,
                  "detector": detector_name, "random_weights": not loaded, **selection.describe(),
                  "checkpoints": [vars(c) for c in loaded], **pipeline.runner.describe()}))
    else:
        done = swap_video(pipeline, target_path, out_path, info, started, resume_from=resume_from,
                          options=encoding)
    elapsed = time.perf_counter() - started - done.copy_s  # this run's frames, not the copy
    run_frames = done.frames - done.copied
    faceless_video = (info is not None and not done.interrupted and run_frames > 0
                      and pipeline.frames_swapped == 0)
    if faceless_video:
        print(f"WARNING: no face found in any of the {run_frames} frame(s) of {target_path}; "
              f"{done.path} holds the target's frames unswapped", file=sys.stderr)
    means = pipeline.timer.mean_ms()
    print(f"wrote {done.path or 'nothing'}: {done.frames} frame(s)"
          + (f" ({done.copied} from the interrupted run)" if done.copied else "")
          + f", {pipeline.frames_swapped} swapped, {pipeline.frames_without_face} without a face")
    for stage in STAGES:
        if stage in means:
            print(f"  {stage:<14} {means[stage]:8.2f} ms/call  ({pipeline.timer.calls[stage]} calls)")
    print(f"  end to end     {run_frames / elapsed:8.2f} fps")
    print(f"  faces          --face {selection.mode}: {pipeline.faces_swapped} swapped; detector run on "
          f"{pipeline.detections} of {run_frames} frame(s) (--detect-every {args.detect_every}), "
          f"{pipeline.tracker.tracks_seen} track(s) seen")
    record = Record(
        command="swap", model=spec.name, mode="video" if info else "image",
        metrics={"fps": run_frames / elapsed, "frames": done.frames, "frames_resumed": done.copied,
                 "frames_swapped": pipeline.frames_swapped,
                 "frames_without_face": pipeline.frames_without_face,
                 "faces_swapped": pipeline.faces_swapped, "detections": pipeline.detections,
                 "tracks_seen": pipeline.tracker.tracks_seen,
                 **{f"{s}_ms": v for s, v in means.items()}},
        input_shapes={"frame": [1, 3, size, size]},
        info={"source": str(source_path), "target": str(target_path), "out": done.path and str(done.path),
              "detector": detector_name,
              "detector_options": {k: v for k, v in options.items() if k != "model_path"},
              "detect_every": args.detect_every, "random_weights": not loaded,
              **selection.describe(), "chosen_tracks": pipeline.chosen_tracks,
              "checkpoints": [vars(c) for c in loaded], **pipeline.runner.describe(),
              "video": None if info is None else vars(info), **(done.record_info() if info else {})},
    )
    if faceless_video:
        record.info["warning"] = "no face found in any frame of the target"
    if done.interrupted:
        record.status = "error"
        record.error = (f"interrupted after {done.frames} frame(s); kept in {done.path}" if done.frames
                        else "interrupted before the first frame; nothing kept"
                        + (f" ({done.path} is unchanged)" if done.path else ""))
    append_records(Path(args.records), stamp([record], new_run_id()))
    return done.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
