"""One ``mfsbench distill`` invocation: data → networks → (resume) → loop → outputs.

Kept apart from the CLI so tests and the benchmark drive exactly what the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mfsbench.distill import checkpoint as ckpt
from mfsbench.distill.data import CropSet, PrepSettings, prepare
from mfsbench.distill.nets import build_nets
from mfsbench.distill.trainer import Distiller
from mfsbench.errors import BadInputError
from mfsbench.registry import get_spec


def teacher_alignment(config: dict[str, Any]) -> str:
    """'teacher' → the template the teacher family was trained on (SimSwap: its multi-pose fit); a card
    teacher's crops are made from ``arcface`` crops (:mod:`mfsbench.distill.card_teacher`), and any
    other alignment is refused here, before faces are detected."""
    align = config["data"]["align"]
    spec = get_spec(config["model"]["teacher"])
    if spec.card is not None:
        from mfsbench.distill.card_teacher import CARD_DATA_ALIGN, refuse_alignment

        if align not in ("teacher", CARD_DATA_ALIGN):
            refuse_alignment(spec.card.card, align)
        return CARD_DATA_ALIGN
    if align != "teacher":
        return align
    return "arcface" if spec.family.startswith("mobilefaceswap") else "simswap"


class Session:
    def __init__(self, config: dict[str, Any], preset: str, data: Path, out: Path, *,
                 cache: Path | None = None, rank: int = 0, world: int = 1) -> None:
        self.config, self.preset, self.out = config, preset, out
        size = config["data"]["size"] or get_spec(config["model"]["student"]).native_size
        align = teacher_alignment(config)
        settings = PrepSettings(size, align, config["data"]["min_eye_distance_px"],
                                config["data"]["detector"])
        cache = cache or out / "faces"
        manifest = prepare(data, cache, settings)
        self.crops = CropSet(cache / manifest["key"], manifest, config["data"]["holdout"])
        self.nets = build_nets(config, align)
        self.distiller = Distiller(config, self.nets, self.crops, out, rank=rank, world=world)
        self.distiller.preset = preset

    def start(self, resume: str | None) -> dict[str, str]:
        folder = self.out / "checkpoints"
        existing = ckpt.latest(folder)
        if resume is None and existing is not None:
            raise BadInputError(f"{self.out} already holds a run ({existing.name}); pass --resume to "
                                "continue it or choose a new --out")
        if resume is not None:
            path = existing if resume == "auto" else Path(resume)
            if path is None:
                raise BadInputError(f"--resume: no checkpoint in {folder}; start without --resume")
            self.distiller.restore(ckpt.load(path, self.config))
        self.distiller.run(self.config["run"]["steps"])
        return self.distiller.export()
