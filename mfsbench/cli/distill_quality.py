"""``mfsbench distill-quality``: train the image-quality regressor Q of Eq. 4 from teacher-training snapshots.

``--snapshots DIR`` holds one subfolder per saved teacher iteration, named by the iteration number
(``DIR/10000/*.png``, ``DIR/20000/*.png``, …); each image's target is ``iteration / max iteration``.
Q (a ResNet-18) regresses it with an L2 loss and is written to ``--out`` (``.safetensors``), with a
record in ``records.jsonl`` beside it. ``mfsbench distill --quality-weights Q.safetensors`` (or
``[reweight] quality = "regressor"`` and ``quality_weights``) then makes α = cos² × Q(teacher output).
See :mod:`mfsbench.distill.quality`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mfsbench.errors import BadInputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snapshots", type=Path,
                        help="folder with one subfolder per teacher-training iteration (named by the number) "
                        "holding that snapshot's output images")
    parser.add_argument("--out", type=Path,
                        help="where to write Q (.safetensors); records.jsonl goes beside it")
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--size", type=int, default=224, help="side Q sees its input at (default 224)")
    parser.add_argument("--width", type=int, default=64,
                        help="ResNet-18 first width (64 = the real network; smaller only for tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and batch draws (default 0)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to train (default cpu)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for flag in ("snapshots", "out"):
        if getattr(args, flag) is None:
            raise BadInputError(f"--{flag} is required (see mfsbench distill-quality --help)")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise BadInputError("--device cuda: no CUDA device here; use --device cpu")
    from mfsbench.checkpoints.digest import sha256_file
    from mfsbench.distill.quality import train_quality
    from mfsbench.records import Record, append_records, new_run_id, stamp

    result = train_quality(args.snapshots, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                           width=args.width, size=args.size, seed=args.seed, device=args.device)
    history, fit = result["history"], result["fit"]
    metrics = {"loss_l2_first": history[0]["loss_l2"], "loss_l2_last": history[-1]["loss_l2"],
               "l2_all_images": fit["l2_all_images"], "spearman_progress": fit["spearman_progress"],
               "train_s": result["train_s"]}
    info = {"snapshots": str(args.snapshots), "layout": result["snapshots"], "settings": result["settings"],
            "history": history, "mean_score_per_iteration": fit["mean_score_per_iteration"],
            "weights": {"path": str(args.out), "sha256": sha256_file(args.out)},
            "paper": "Eq. 4: Q regresses the fraction of completed teacher-training iterations with L2 loss"}
    record = Record("distill-quality", "quality_resnet18", metrics=metrics,
                    input_shapes={"image": [1, 3, args.size, args.size]}, info=info)
    append_records(args.out.parent / "records.jsonl", stamp([record], new_run_id()))
    layout = result["snapshots"]
    print(f"trained Q on {layout['images']} images from {len(layout['iterations'])} "
          f"snapshots: L2 {metrics['loss_l2_first']:.4f} → {metrics['loss_l2_last']:.4f}, rank correlation "
          f"with progress {metrics['spearman_progress']:.3f}")
    print(f"  weights: {args.out}")
    return 0
