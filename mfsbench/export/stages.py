"""Which module an export sees: one *stage* of a spec, with plain tensor inputs and tuple outputs.

Deployment never ships "a model": the identity stage runs once per source and the frame stage runs
per frame with one identity injected as frozen weights (video mode). Exporting the two separately is
what makes an exported frame network match the video-mode counts. Exporters and runtimes want a
flat tuple of tensors out, so stage outputs are flattened here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.errors import BadInputError
from mfsbench.models.base import SwapNet
from mfsbench.registry import ModelSpec

STAGES = ("frame", "identity")
SEED = 0


def _flatten(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _flatten(item)]
    raise TypeError(f"stage output of type {type(value).__name__} is not a tensor or a tuple of tensors")


class FlatOutputs(nn.Module):
    """Wraps a stage so that ``forward`` returns a flat tuple of tensors (what exporters name)."""

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        self.stage = stage

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        return tuple(_flatten(self.stage(*inputs)))


def random_inputs(shapes: Iterable[Sequence[int]], seed: int = SEED) -> tuple[Tensor, ...]:
    """Uniform [0, 1] inputs (the range every stage takes), reproducible across runs."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(*shape, generator=generator) for shape in shapes)


def stage_input_names(spec: ModelSpec, stage: str) -> tuple[str, ...]:
    return tuple(item.name for item in spec.stage(stage).inputs)  # type: ignore[arg-type]


def stage_module(
    spec: ModelSpec, model: SwapNet, stage: str, size: int
) -> tuple[nn.Module, tuple[Tensor, ...]]:
    """``(module, example_inputs)`` for ``stage`` of ``model`` at frame size ``size``.

    The frame stage gets one identity injected: the identity stage is run once on a seeded random
    source, as in video mode (identity values change numbers, never the graph).

    Raises:
        BadInputError: a stage the spec does not have, or a size it cannot take.
    """
    if stage not in spec.stage_names:
        raise BadInputError(
            f"{spec.name} has no {stage!r} stage; choose one of {', '.join(spec.stage_names)}"
        )
    spec.check_size(size)
    model.eval()
    identity = None
    identity_module = model.identity_stage()
    if identity_module is not None:
        identity_module.eval()
    if stage == "identity":
        assert identity_module is not None, f"{spec.name} declares an identity stage but builds none"
        shapes = spec.stage("identity").input_shapes(size).values()
        return FlatOutputs(identity_module).eval(), random_inputs(shapes)
    if "identity" in spec.stage_names and identity_module is not None:
        source_shapes = spec.stage("identity").input_shapes(size).values()
        with torch.no_grad():
            identity = identity_module(*random_inputs(source_shapes, seed=SEED + 1))
    frame = model.frame_stage(identity).eval()
    shapes = spec.stage("frame").input_shapes(size).values()
    return FlatOutputs(frame).eval(), random_inputs(shapes)


def aligned_crops(
    images_bgr: Sequence[np.ndarray], size: int, method: str = "arcface", detector: str = "dlib"
) -> list[np.ndarray]:
    """Every detected face in ``images_bgr`` aligned to ``method``'s template at ``size``.

    Returns (3, size, size) float32 RGB in [0, 1]: the tensor layout the swap pipeline feeds the
    stages, used for int8 calibration and for parity on real faces.
    """
    from mfsbench.faces.align import align
    from mfsbench.faces.detectors import get_detector

    found = get_detector(detector)
    crops = []
    for image in images_bgr:
        for face in found.detect(image):
            crop, _ = align(image, face.landmarks5, method, size)
            rgb = np.ascontiguousarray(crop[:, :, ::-1], dtype=np.float32) / 255.0
            crops.append(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    return crops
