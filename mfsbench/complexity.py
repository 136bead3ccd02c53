"""Stage counts of a spec and their composition into the paper's image and video modes.

This is where "image = identity + frame, video = frame" is applied to numbers. Counting always
happens per stage (each stage module is traced once); the modes are sums over stages, so the image
and video figures can never come from two different code paths.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import torch

from mfsbench.conventions import Convention
from mfsbench.counting import (
    FlopCount,
    cheap_init,
    count_flops,
    count_params,
    random_inputs,
)
from mfsbench.registry import ModelSpec, ModeName, StageName


@dataclass
class StageCount:
    """Counts of one stage at one input size."""

    stage: StageName
    params: int
    learned_params: int
    flops: FlopCount
    input_shapes: dict[str, tuple[int, ...]]


@dataclass
class ModeCount:
    """A mode's figures, composed from stage counts.

    ``params`` follows the spec's column definition (``ModelSpec.image_params``);
    ``params_stored`` is always every distinct learned tensor the mode runs.
    """

    mode: ModeName
    stages: tuple[StageName, ...]
    params: int
    params_stored: int
    flops: int
    params_definition: str


def count_spec(
    spec: ModelSpec, size: int, convention: Convention, *, cross_check: bool = True
) -> dict[StageName, StageCount]:
    """Build ``spec``'s network and count each of its stages at frame size ``size``.

    The identity stage runs once on a random source to produce the identity that the frame stage
    is built with; identity values never change a count, only shapes do.
    """
    spec.check_size(size)
    from mfsbench.registry import create_model

    with cheap_init():  # weights never change a count; random draws cost seconds per model
        model = create_model(spec.name)
    counts: dict[StageName, StageCount] = {}
    try:
        identity = None
        identity_module = model.identity_stage()
        if "identity" in spec.stage_names:
            assert identity_module is not None, f"{spec.name} declares an identity stage but builds none"
            stage = spec.stage("identity")
            shapes = stage.input_shapes(size)
            inputs = random_inputs(shapes.values())
            outputs: list[Any] = []
            keep = identity_module.register_forward_hook(lambda _m, _i, out: outputs.append(out))
            try:  # the counter's trace runs the stage for real: its output is the identity
                flops = count_flops(identity_module, inputs, convention, cross_check=cross_check)
            finally:
                keep.remove()
            params = count_params([identity_module])
            counts["identity"] = StageCount("identity", params, params, flops, shapes)
            identity = next((out for out in outputs if not _on_meta_device(out)), None)
            if identity is None:  # a counter that never ran it on CPU: run it once
                with torch.no_grad():
                    identity = identity_module(*inputs)
        if "frame" in spec.stage_names:
            stage = spec.stage("frame")
            shapes = stage.input_shapes(size)
            frame_module = model.frame_stage(identity)
            flops = count_flops(
                frame_module, random_inputs(shapes.values()), convention, cross_check=cross_check
            )
            # learned weights the frame stage shares with the identity stage count once in image mode
            earlier = [identity_module] if identity_module is not None else []
            learned = count_params([*earlier, frame_module], learned_only=True) - count_params(
                earlier, learned_only=True
            )
            counts["frame"] = StageCount("frame", count_params([frame_module]), learned, flops, shapes)
    finally:
        del model
        gc.collect()
    return counts


def _on_meta_device(value: Any) -> bool:
    """Whether any tensor in a (nested) stage output lives on the meta device (the cross-check's run)."""
    if isinstance(value, torch.Tensor):
        return value.device.type == "meta"
    if isinstance(value, (tuple, list)):
        return any(_on_meta_device(item) for item in value)
    return False


def compose_modes(spec: ModelSpec, counts: dict[StageName, StageCount]) -> dict[ModeName, ModeCount]:
    """Image mode sums every stage; video mode is the frame stage alone."""
    modes: dict[ModeName, ModeCount] = {}
    for mode in spec.modes:
        stages = spec.stages_for(mode)
        flops = sum(counts[s].flops.flops for s in stages)
        if mode == "video":
            params = stored = counts["frame"].params
            definition = "every tensor of the per-frame network, identity-derived kernels included"
        else:
            stored = sum(counts[s].params if s == "identity" else counts[s].learned_params for s in stages)
            if spec.image_params == "identity_stage" and "identity" in counts:
                params = counts["identity"].params
                definition = (
                    "identity stage only (Id network + IIN), the paper's definition for its student; "
                    "params_stored_m adds the static output and mask heads"
                )
            else:
                params = stored
                definition = "every distinct learned tensor that image mode runs"
        modes[mode] = ModeCount(mode, stages, params, stored, flops, definition)
    return modes
