"""Tiny ``test_*`` networks: the real architectures at toy widths, so every command runs in seconds.

Their specs (``mfsbench.zoo.tiny``) are registered like any other model (timm's habit) and hidden
from ``mfsbench models`` unless ``--all`` is given. ``test_mobilefaceswap`` is the full two-stage
student pipeline (a one-block-per-stage ArcFace at widths 4–16 feeding a narrow IIN/IDN);
``test_frame_only`` is a one-stage net with no identity input, the shape of DeepFakes and FSGAN.
"""

from __future__ import annotations

from torch import Tensor, nn

from mfsbench.models.arcface import ArcFaceIRSE
from mfsbench.models.base import Identity, SwapNet
from mfsbench.models.mobilefaceswap import MobileFaceSwap, StudentConfig

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
