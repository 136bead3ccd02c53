"""Specs of the tiny ``test_*`` networks (:mod:`mfsbench.models.tiny`): every command in seconds.

Hidden from ``mfsbench models`` unless ``--all`` is given. Their expected counts are regression
values like every other spec's, recomputed by ``tests/test_zoo_specs.py``.
"""

from __future__ import annotations

from mfsbench.registry import (
    Builder,
    ExpectedCounts,
    InputSpec,
    ModelSpec,
    SizeRule,
    StageSpec,
    register_model,
)
from mfsbench.zoo.paper import STUDENT_FRAME, STUDENT_IDENTITY, STUDENT_SIZES


@register_model
def test_mobilefaceswap() -> ModelSpec:
    return ModelSpec(
        name="test_mobilefaceswap",
        display_name="Tiny student (tests)",
        family="test",
        provenance="test",
        native_size=64,
        size_rule=STUDENT_SIZES,
        stages=(STUDENT_IDENTITY, STUDENT_FRAME),
        builder=Builder("mfsbench.models.tiny:build_tiny_student"),
        description="the MobileFaceSwap pipeline at toy widths, for seconds-long tests",
        # Backed by: regression baseline only (toy widths, no paper or spec figure).
        expected=ExpectedCounts(55_445, 2_996, 4_776_276, 1_816_960),
        image_params="identity_stage",
    )


@register_model
def test_frame_only() -> ModelSpec:
    return ModelSpec(
        name="test_frame_only",
        display_name="Tiny frame-only net (tests)",
        family="test",
        provenance="test",
        native_size=32,
        size_rule=SizeRule(multiple_of=2, minimum=4),
        stages=(StageSpec("frame", (InputSpec("target", 3),), "conv autoencoder"),),
        builder=Builder("mfsbench.models.tiny:TinyFrameNet"),
        description="a one-stage network without identity input, for seconds-long tests",
        # Backed by: regression baseline only (toy network, no paper or spec figure).
        expected=ExpectedCounts(None, 459, None, 319_488),
    )


@register_model
def test_simswap() -> ModelSpec:
    return ModelSpec(
        name="test_simswap",
        display_name="Tiny SimSwap (distillation tests)",
        family="test",
        provenance="test",
        native_size=64,
        size_rule=SizeRule(multiple_of=8, minimum=16),
        stages=(
            StageSpec("identity", (InputSpec("source", 3, 112),),
                      "toy ArcFace, L2 normalise, then the 4 ApplyStyle linears"),
            StageSpec("frame", (InputSpec("target", 3),), "SimSwap generator at width 8 with 2 AdaIN blocks"),
        ),
        builder=Builder("mfsbench.models.tiny:build_tiny_simswap"),
        description="SimSwap's generator at toy widths: the teacher of the seconds-long distill tests",
        # Backed by: regression baseline only (toy widths, no paper or spec figure).
        expected=ExpectedCounts(25_621, 199_491, 4_371_792, 37_818_368),
    )
