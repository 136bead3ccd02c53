"""Which module an export sees: one *stage* of a spec, with plain tensor inputs and tuple outputs.

Deployment never ships "a model": the identity stage runs once per source and the frame stage runs
per frame with one identity injected as frozen weights (video mode). Exporting the two separately is
what makes an exported frame network match the video-mode counts. Exporters and runtimes want a
flat tuple of tensors out, so stage outputs are flattened here.
"""

from __future__ import annotations

import copy
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


def _adapter(spec: ModelSpec) -> Any:
    """``spec``'s swap adapter; families without a swap pipeline get the plain one (ArcFace template,
    [0, 1] RGB), which is what their stages are fed in tests and sweeps."""
    from mfsbench.swap.adapters import ADAPTERS

    return ADAPTERS.get(spec.family, ADAPTERS["test"])


def face_crops_per_photo(
    spec: ModelSpec, size: int, images_bgr: Sequence[np.ndarray], *, limit: int | None = None,
    mirror: bool = False, detector: str = "dlib",
) -> list[list[np.ndarray]]:
    """Each photo's detected faces (at most ``limit``), aligned as ``spec``'s own swap pipeline aligns.

    The model's adapter decides the template (ArcFace for the student, SimSwap's for SimSwap), so
    int8 calibration and parity see the crops the stage sees in use. ``mirror`` adds each crop's
    mirror image. Photos without a face give an empty list (callers decide whether that is an error).
    Returns BGR uint8 crops of ``size``; :func:`frame_stage_inputs` turns them into stage inputs.
    """
    from mfsbench.faces.align import align
    from mfsbench.faces.detectors import get_detector

    adapter = _adapter(spec)
    found = get_detector(detector)
    per_photo = []
    for image in images_bgr:
        crops = []
        for face in found.detect(image)[:limit]:
            crop, _ = align(image, face.landmarks5, adapter.align, size)
            crops += [crop, np.ascontiguousarray(crop[:, ::-1])] if mirror else [crop]
        per_photo.append(crops)
    return per_photo


def frame_stage_inputs(spec: ModelSpec, size: int, crops: Iterable[np.ndarray]) -> list[tuple[Any, ...]]:
    """One frame-stage input tuple per crop: the adapter's tensor (RGB in [0, 1], NCHW) as numpy,
    then zeros for any further input of the stage."""
    adapter = _adapter(spec)
    extra = tuple(np.zeros(item.shape(size), np.float32) for item in spec.stage("frame").inputs[1:])
    return [(adapter.frame_tensor(crop).numpy(), *extra) for crop in crops]


def _is_bilinear_up(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Upsample) and layer.mode == "bilinear" and layer.size is None


def _is_pointwise(layer: nn.Module) -> bool:
    return (isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.stride == (1, 1)
            and layer.padding in ((0, 0), "valid") and layer.groups == 1)


def _commutable(layers: list[nn.Module], i: int) -> int:
    """End of a narrowing ``Upsample(bilinear) → Conv1×1 [→ BatchNorm]`` starting at ``i``, else 0."""
    if i + 1 >= len(layers):
        return 0
    up, conv = layers[i], layers[i + 1]
    if not (_is_bilinear_up(up) and _is_pointwise(conv) and conv.out_channels < conv.in_channels):
        return 0
    end = i + 2
    return end + 1 if end < len(layers) and isinstance(layers[end], nn.BatchNorm2d) else end


def _commute_upsample(seq: nn.Sequential) -> int:
    """Move every ``Upsample(bilinear) → Conv1×1 [→ BatchNorm]`` that *narrows* channels to after them.

    Exact in real arithmetic: bilinear interpolation mixes pixels of one channel with weights that
    sum to 1, a 1×1 conv (and eval BatchNorm) mixes channels of one pixel affinely, so the two
    commute, bias included. Doing the conv first computes it on a 4× smaller map and interpolates
    fewer channels. Returns how many were moved.
    """
    layers = list(seq)
    moved = 0
    i = 0
    while i < len(layers):
        end = _commutable(layers, i)
        if end:
            layers[i:end] = [*layers[i + 1:end], layers[i]]
            moved += 1
            i = end
        else:
            i += 1
    if moved:
        for name in list(seq._modules):
            del seq._modules[name]
        for index, layer in enumerate(layers):
            seq.add_module(str(index), layer)
    return moved


def _model_rewrites(root: nn.Module) -> list[nn.Module]:
    """Submodules that know an exact deployment form of themselves (``rewrite_for_deployment()``)."""
    return [m for m in root.modules() if callable(getattr(m, "rewrite_for_deployment", None))]


def export_ready(module: nn.Module) -> nn.Module:
    """``module`` rewritten for deployment, as a copy; ``module`` itself is never changed.

    Two kinds of rewrite, both exact in real arithmetic, so outputs agree with the original to
    float rounding; every exporter applies this and parity is checked against the *unrewritten*
    module, which proves it on each export:

    * generic: :func:`_commute_upsample` in every ``nn.Sequential``. On the student frame stage (the
      ``final`` head: up ×2 then 1×1 32→8) the 224×224 upsample moves from 32 to 8 channels and the
      1×1 conv runs at 112×112: LiteRT fp32 8.54 → 7.66 ms, OpenVINO f32 10.8 → 10.1 ms (medians,
      interleaved A/B on the shared 2 cores);
    * model-specific: a submodule with a ``rewrite_for_deployment()`` method rewrites itself (the
      student's output tail, :meth:`mfsbench.models.mobilefaceswap.InjectedIDN.rewrite_for_deployment`).

    A module with nothing to rewrite is returned as is (no copy of SimSwap's weights).
    """
    def sequences(root: nn.Module) -> list[nn.Sequential]:
        return [m for m in root.modules() if isinstance(m, nn.Sequential)]

    commutable = any(_commutable(list(seq), i) for seq in sequences(module) for i in range(len(seq)))
    if not commutable and not _model_rewrites(module):
        return module
    ready = copy.deepcopy(module).eval()
    for part in _model_rewrites(ready):
        part.rewrite_for_deployment()
    for seq in sequences(ready):
        _commute_upsample(seq)
    return ready
