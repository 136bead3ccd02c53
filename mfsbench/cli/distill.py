"""``mfsbench distill``: train a MobileFaceSwap student from a teacher with the paper's objective (Eq. 3–7).

The recipe, what the paper gives and what is ours, and the switches: ``mfsbench distill --print-config``
and ``mfsbench/distill/config.py``. Outputs in ``--out``: ``records.jsonl`` (a training record every
``log_every`` steps, a held-out evaluation before the first step, every ``eval_every`` steps and at
the end), ``checkpoints/ckpt-*.pt`` (resumable), ``samples/*.png``, ``curves.png`` and
``student.safetensors`` (+ ``MobileFaceSwap_224.pdparams`` for the released architecture).
Run under ``torchrun --nproc_per_node N`` for data-parallel training (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mfsbench.cli.common import add_license_option, apply_license_option
from mfsbench.errors import BadInputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", help="teacher model name (simswap_224, test_simswap, …) or a model card "
                        "(card.toml path or card id; runs in ONNX Runtime, see the README)")
    parser.add_argument("--student", help="student model name (mobilefaceswap_224, mfs_* ablations, …)")
    parser.add_argument("--data", type=Path, help="folder of face photos and/or videos")
    parser.add_argument("--out", type=Path, help="run folder (records, checkpoints, samples, student)")
    parser.add_argument("--config", type=Path, help="TOML overriding the preset (see --print-config)")
    parser.add_argument("--preset", default="paper",
                        help="paper | kd_only | ablation:no_kd | ablation:no_quality_reweighting | "
                        "ablation:no_identity_reweighting | ablation:no_identity_loss | "
                        "ablation:no_mask_loss")
    parser.add_argument("--steps", type=int, help="train until this step")
    parser.add_argument("--resume", nargs="?", const="auto", metavar="auto|CKPT",
                        help="continue the run in --out (its latest checkpoint) or from CKPT")
    parser.add_argument("--seed", type=int, help="seed of weights, pairs and noise (default: the config's)")
    parser.add_argument("--batch-size", type=int, help="images per step (default: the config's)")
    parser.add_argument("--min-eye-distance", type=float, help="eye distance filter in px (paper: 70)")
    parser.add_argument("--teacher-weights", action="append", default=None, metavar="[FORMAT=]PATH",
                        help="teacher checkpoint(s), as `mfsbench swap --checkpoint` (for a card: its "
                        "suite ArcFace encoder's weights, arcface_tar= or arcface_pdparams=)")
    parser.add_argument("--id-weights", help="ArcFace weights for the student's Id network, L_id and α")
    parser.add_argument("--perceptual-weights", help="VGG-16 state dict (.safetensors / .pth)")
    parser.add_argument("--parser-weights", help="face-parsing BiSeNet checkpoint (79999_iter.pth); sets "
                        "[loss] mask_source = parser (background labels: [loss] bg_labels)")
    parser.add_argument("--quality-weights", help="quality regressor Q from `mfsbench distill-quality`; sets "
                        "[reweight] quality = regressor (α = cos² × Q(teacher output))")
    parser.add_argument("--student-init", help="MobileFaceSwap_224.pdparams to fine-tune from")
    parser.add_argument("--allow-random-weights", action="store_true",
                        help="run with random frozen networks (pipeline checks only; said in every record)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="where to train (default: config)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="bf16 autocast for the frozen networks")
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile student and nets")
    parser.add_argument("--cache", type=Path, help="aligned-face cache folder (default: OUT/faces)")
    parser.add_argument("--print-config", action="store_true", help="print every key, its default and source")
    add_license_option(parser)
    parser.set_defaults(run=run)


def overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Command-line flags as a config overlay (only the flags given)."""
    pairs = {
        ("model", "teacher"): args.teacher, ("model", "student"): args.student,
        ("run", "steps"): args.steps, ("run", "seed"): args.seed, ("data", "batch_size"): args.batch_size,
        ("data", "min_eye_distance_px"): args.min_eye_distance,
        ("model", "teacher_weights"): args.teacher_weights, ("model", "id_weights"): args.id_weights,
        ("loss", "perceptual_weights"): args.perceptual_weights, ("model", "student_init"): args.student_init,
        ("model", "allow_random_weights"): True if args.allow_random_weights else None,
        ("perf", "device"): args.device, ("perf", "precision"): args.precision,
        ("perf", "compile"): args.compile,
    }
    if args.parser_weights is not None:
        pairs[("loss", "parser_weights")] = args.parser_weights
        pairs[("loss", "mask_source")] = "parser"
    if args.quality_weights is not None:
        pairs[("reweight", "quality_weights")] = args.quality_weights
        pairs[("reweight", "quality")] = "regressor"
    out: dict[str, dict[str, Any]] = {}
    for (section, key), value in pairs.items():
        if value is not None:
            out.setdefault(section, {})[key] = value
    return out


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank = dist.get_rank()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return rank, world


def run(args: argparse.Namespace) -> int:
    from mfsbench.distill import config as cfg

    if args.print_config:
        print(cfg.describe())
        return 0
    for flag in ("teacher", "student", "data", "out"):
        if getattr(args, flag) is None:
            raise BadInputError(f"--{flag} is required (see mfsbench distill --help)")
    config = cfg.resolve(args.preset, args.config, overrides(args))
    apply_license_option(args)  # before the teacher is resolved: resolving a card checks its licence
    from mfsbench.distill.session import Session

    rank, world = _distributed()
    session = Session(config, args.preset, args.data, args.out, cache=args.cache, rank=rank, world=world)
    outputs = session.start(args.resume)
    if rank == 0:
        last = session.distiller.evals[-1]
        first = session.distiller.evals[0]
        print(f"distilled {config['model']['student']} from {config['model']['teacher']}: step "
              f"{session.distiller.step}, held-out PSNR to teacher {first['psnr_db']:.2f} → "
              f"{last['psnr_db']:.2f} dB, L1 {first['l1']:.4f} → {last['l1']:.4f}")
        for kind, path in outputs.items():
            print(f"  {kind}: {path}")
    return 0
