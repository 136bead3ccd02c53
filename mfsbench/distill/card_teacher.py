"""A model card as the distillation teacher: the card's ONNX graph in ONNX Runtime, one forward per batch.

Why this can be ONNX Runtime and not torch: the teacher is frozen and never passes a gradient (α and
the KD references are computed under ``no_grad``), so all a step needs is its output. The card is run
by the swap pipeline's own :class:`~mfsbench.swap.runners.OnnxCardRunner` (built by
:func:`~mfsbench.swap.runners.card_runner`, so the input spec, identity encoder and projection, and
the output de-normalisation are the ones ``mfsbench swap --model CARD`` runs), fed float crops so
nothing is rounded to 8 bits on the way in or out.

**Frames.** The distill crops are aligned once with the suite's ``arcface`` template (the ArcFace 112
points, 6-DoF fit) at the student's size. The card wants its own template at its own size, and its
identity encoder its own crop. Every named card template is a similarity transform of those points
(``arcface_112_v2``: the same points; ``arcface_128``: shifted 8 px; ``arcface_112_v1``: SimSwap's
frontal points), so each crop is made from the student's crop by the similarity that maps the
student's template onto the card's (or the encoder's), and the card's output is warped back with its
inverse. Pixels of the student's crop that the card's crop does not cover keep the target, as pasting
the card's crop into a frame would leave them. When the two templates and sizes agree the crops go
through untouched (no resampling). What this does not reproduce: the residual between the cache's
6-DoF fit and the card's own fit of the same landmarks (the cache keeps crops, not landmarks), which
is the shear the 6-DoF fit allows. ``[data] align = "simswap"`` is refused with a card: it picks one of
five templates per face and the cache does not keep which, so the card's crop cannot be derived.

**Cache key.** :attr:`CardTeacher.cache_key` is the sha256 of the card file, of every file it names
(their sha256) and of the identity encoder's weights record: the teacher cache
(:mod:`mfsbench.distill.pair_cache`) and ``--resume`` compare it, so an edited card or other encoder
weights never reuse outputs of the old one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.errors import BadInputError

if TYPE_CHECKING:
    from mfsbench.registry import ModelSpec
    from mfsbench.swap.runners import OnnxCardRunner

#: the only cache alignment a card's crop can be derived from (see the module docstring)
CARD_DATA_ALIGN = "arcface"
_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def refuse_alignment(card: Any, align: str) -> None:
    """One line: a card teacher's crop cannot be made from crops aligned with ``align``."""
    template = card.template if isinstance(card.template, str) else "custom 5-point"
    raise BadInputError(
        f"--teacher {card.path}: the distill crops would be aligned with [data] align = {align!r}, which "
        "picks one of five templates per face (the cache keeps no landmarks), so the card's "
        f"{template} crop cannot be derived from them; set [data] align = \"teacher\" or \"arcface\"")


def _mapping(student_points: np.ndarray, points: np.ndarray, same_size: bool,
             fit: str = "similarity") -> np.ndarray | None:
    """The 2×3 map (``fit``: similarity or affine) from the student's crop to another crop, or None when
    it is the identity."""
    from mfsbench.faces.align import fit_points

    matrix = fit_points(student_points, points, fit)
    return None if same_size and np.allclose(matrix, _IDENTITY, atol=1e-6) else matrix


#: distinct source identities kept by a card teacher (a 512-float identity is 2 KiB: 8 MiB at most)
IDENTITY_CACHE_ENTRIES = 4096


class CardTeacher(nn.Module):
    """A card's swapper as a frozen teacher: ``forward(source, target)`` on RGB [0, 1] crops of the
    student's frame (B×3×S×S each) returns the card's swap in the student's frame (B×3×S×S, [0, 1])."""

    #: the trainer passes the source crop itself (not ArcFace's 112 input): the card makes its own
    takes_source_crop = True

    def __init__(self, spec: ModelSpec, checkpoints: list[str], *, allow_random: bool, seed: int,
                 student_size: int, data_align: str) -> None:
        super().__init__()
        from mfsbench.faces.align import template_for
        from mfsbench.swap.runners import card_runner

        loaded = spec.card
        assert loaded is not None
        card = loaded.card
        if data_align != CARD_DATA_ALIGN:
            refuse_alignment(card, data_align)
        self.runner: OnnxCardRunner = card_runner(spec, checkpoints, allow_random=allow_random, seed=seed)
        self.spec_name = spec.name
        self.card = card
        self.size = student_size
        student_points = template_for(CARD_DATA_ALIGN, student_size)
        # with the card's own fit (target.warp), as the swap pipeline maps landmarks onto its template
        self.to_card = _mapping(student_points, self.runner.points, card.size == student_size, card.fit)
        self.from_card = None if self.to_card is None else self._invert(self.to_card)
        encoder = self.runner.encoder
        #: whether the graph reads an identity input (a card whose identity is baked into its weights,
        #: like the student's own frame-stage export, has none: its encoder is never run)
        self.reads_identity = card.identity.kind == "image" or self.runner.source_name is not None
        if card.identity.kind == "image":
            self.source_frame: tuple[np.ndarray | None, int] = (self.to_card, card.size)
        else:
            assert encoder is not None
            points, size = self._encoder_frame(encoder)
            self.source_frame = (_mapping(student_points, points, size == student_size), size)
        self.encoder_info: dict[str, Any] = dict(encoder.info) if encoder is not None else {}
        self.random_encoder = bool(self.encoder_info.get("random_weights"))
        self.cache_key = self._key(loaded)
        self.calls = 0  # forwards run (rows), for the record
        #: the graph's identity input per distinct source crop (bytes digest → array): an embedding
        #: encoder (inswapper's is a ResNet-50, ~0.6 s a row on one core) runs once per source, not per
        #: row and step; exact, since the same bytes give the same identity
        self._identities: dict[bytes, np.ndarray] = {}
        self.identity_runs = 0

    @staticmethod
    def _template_name(template: Any) -> str:
        return template if isinstance(template, str) else "custom 5-point"

    @staticmethod
    def _invert(matrix: np.ndarray) -> np.ndarray:
        from mfsbench.faces.align import cv2_module

        return cv2_module().invertAffineTransform(matrix)

    @staticmethod
    def _encoder_frame(encoder: Any) -> tuple[np.ndarray, int]:
        """The template points and size of the crop the encoder embeds."""
        points = getattr(encoder, "points", None)
        if points is not None:  # a card's own encoder graph: arcface_112_v2 at 112
            return np.asarray(points, np.float64), 112
        from mfsbench.faces.align import template_for

        adapter = encoder.adapter  # the suite ArcFace: the student's source crop
        return template_for(adapter.align, adapter.source_size), adapter.source_size

    def _key(self, loaded: Any) -> str:
        digest = hashlib.sha256()
        digest.update(Path(self.card.path).read_bytes())
        digest.update(json.dumps({"files": loaded.sha256, "encoder": self.encoder_info, "size": self.size},
                                 sort_keys=True, default=str).encode())
        return digest.hexdigest()

    # ------------------------------------------------------------------ per row
    @staticmethod
    def _bgr255(rgb01: Tensor) -> np.ndarray:
        """A 3×S×S RGB [0, 1] tensor → S×S×3 float32 BGR in [0, 255] (what the runner's crops are)."""
        image = rgb01.detach().float().cpu().permute(1, 2, 0).numpy()[:, :, ::-1] * 255.0
        return np.ascontiguousarray(image, dtype=np.float32)

    def _warp(self, image: np.ndarray, matrix: np.ndarray | None, size: int) -> np.ndarray:
        if matrix is None:
            return image
        from mfsbench.faces.align import warp_to

        return warp_to(image, matrix, size, self.card.border)

    def _back(self, card_rgb: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The card's output in the student's frame; what its crop does not cover keeps the target."""
        if self.from_card is None:
            return card_rgb
        from mfsbench.faces.align import cv2_module

        cv2 = cv2_module()
        size = (self.size, self.size)
        warped = cv2.warpAffine(np.ascontiguousarray(card_rgb), self.from_card, size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        cover = cv2.warpAffine(np.ones(card_rgb.shape[:2], np.float32), self.from_card, size,
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return warped + (1.0 - cover[:, :, None]) * target

    def _inject(self, source_crop: np.ndarray) -> None:
        """The runner's identity input for ``source_crop``: computed once per distinct crop, then reused."""
        key = hashlib.blake2b(np.ascontiguousarray(source_crop).tobytes(), digest_size=16).digest()
        known = self._identities.get(key)
        if known is not None:
            self.runner.source = known
            return
        self.runner.inject(source_crop)
        self.identity_runs += 1
        if len(self._identities) >= IDENTITY_CACHE_ENTRIES:  # bounded: drop the oldest entry
            self._identities.pop(next(iter(self._identities)))
        self._identities[key] = self.runner.source

    @torch.no_grad()
    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        if source.shape[-1] != self.size or target.shape[-1] != self.size:
            raise ValueError(f"CardTeacher was built for {self.size} px crops, got {list(target.shape)}")
        rows = []
        matrix, source_size = self.source_frame
        for src, tgt in zip(source, target, strict=True):
            if self.reads_identity:  # else the identity is baked into the graph: no encoder pass
                self._inject(self._warp(self._bgr255(src), matrix, source_size))
            target_rgb = tgt.detach().float().cpu().permute(1, 2, 0).numpy()
            crop = self._warp(self._bgr255(tgt), self.to_card, self.card.size)
            card_rgb = self.runner.decode_float(self.runner.run_frame(crop))[:, :, ::-1]
            rows.append(self._back(card_rgb, target_rgb))
            self.calls += 1
        batch = torch.from_numpy(np.ascontiguousarray(np.stack(rows).transpose(0, 3, 1, 2), np.float32))
        return batch.to(target.device)

    def describe(self) -> dict[str, Any]:
        """What every record says about the teacher that ran."""
        loaded = self.runner.loaded
        return {
            "kind": "card", "name": self.spec_name, "runtime": "onnxruntime",
            "sha256": loaded.sha256["swapper"], "cache_key": self.cache_key,
            **loaded.record_info(),
            "template": self._template_name(self.card.template), "card_size": self.card.size,
            "student_size": self.size, "data_align": CARD_DATA_ALIGN,
            "frame": "same as the student's crop" if self.to_card is None else
                     "warped from the student's crop (template similarity), output warped back",
            "identity_kind": self.card.identity.kind, "identity_read": self.reads_identity,
            **({"identity_encoder": self.encoder_info} if self.encoder_info else {}),
        }
