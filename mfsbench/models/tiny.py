"""Tiny ``test_*`` networks: the real architectures at toy widths, so every command runs in seconds.

They are registered like any other model (timm's habit) and hidden from ``mfsbench models`` unless
``--all`` is given. ``test_mobilefaceswap`` is the full two-stage student pipeline (a one-block-
per-stage ArcFace at widths 4–16 feeding a narrow IIN/IDN); ``test_frame_only`` is a one-stage net
with no identity input, the shape of DeepFakes and FSGAN.
"""

from __future__ import annotations

from torch import Tensor, nn

from mfsbench.models.arcface import ArcFaceIRSE
from mfsbench.models.base import Identity, SwapNet
from mfsbench.models.mobilefaceswap import MobileFaceSwap, StudentConfig
from mfsbench.models.zoo import STUDENT_FRAME, STUDENT_IDENTITY, STUDENT_SIZES
from mfsbench.registry import ExpectedCounts, InputSpec, ModelSpec, SizeRule, StageSpec, register_model

TINY_STUDENT = StudentConfig(
    encoder=(3, 4, 8, 8, 16, 16),
    decoder=(8, 8, 4, 4),
    mask=(8, 4, 4, 2, 2),
    final_hidden=4,
    id_dim=16,
    id_map_channels=16,
)


def build_tiny_student() -> MobileFaceSwap:
    id_net = ArcFaceIRSE(layers=(1, 1, 1, 1), widths=(4, 8, 8, 16), embedding_dim=16)
    return MobileFaceSwap(TINY_STUDENT, id_net)


class TinyFrameNet(SwapNet):
    """A 3-layer conv autoencoder: no identity stage, image mode equals video mode."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.BatchNorm2d(8),
            nn.LeakyReLU(0.1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(8, 3, 3, 1, 1),
            nn.Sigmoid(),
        )

    def frame_stage(self, identity: Identity | None) -> nn.Module:
        return self

    def forward(self, target: Tensor) -> Tensor:
        return self.net(target)


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
        builder=build_tiny_student,
        description="the MobileFaceSwap pipeline at toy widths, for seconds-long tests",
        expected=ExpectedCounts(55_445, 2_996, 4_776_276, 1_816_960),
        image_params="identity_stage",
        capabilities=frozenset({"flops", "identity", "export", "swap"}),
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
        builder=TinyFrameNet,
        description="a one-stage network without identity input, for seconds-long tests",
        expected=ExpectedCounts(None, 459, None, 319_488),
        capabilities=frozenset({"flops", "export"}),
    )
