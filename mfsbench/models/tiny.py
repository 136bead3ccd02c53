"""Tiny ``test_*`` networks: the real architectures at toy widths, so every command runs in seconds.

Their specs (``mfsbench.zoo.tiny``) are registered like any other model (timm's habit) and hidden
from ``mfsbench models`` unless ``--all`` is given. ``test_mobilefaceswap`` is the full two-stage
student pipeline (a one-block-per-stage ArcFace at widths 4–16 feeding a narrow IIN/IDN);
``test_simswap`` is SimSwap's generator at toy widths (the distillation tests' teacher);
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


def tiny_id_net() -> ArcFaceIRSE:
    """The toy ArcFace of the tiny student (16-d embedding), shared by the tiny teacher's layout."""
    return ArcFaceIRSE(layers=(1, 1, 1, 1), widths=(4, 8, 8, 16), embedding_dim=16)


def build_tiny_simswap() -> SwapNet:
    """``test_simswap``: SimSwap's real generator (2 AdaIN blocks, width 8, 16-d latent) + the toy ArcFace.

    A teacher for ``mfsbench distill`` tests at the tiny student's size (64): same classes as
    ``simswap_224``, so the distillation code path is the one a real SimSwap teacher takes.
    """
    from baselines.simswap import SimSwap224, SimSwapGenerator

    class TinySimSwap(SimSwap224):
        def __init__(self) -> None:
            SwapNet.__init__(self)
            self.id_net = tiny_id_net()
            self.netG = SimSwapGenerator(latent_size=16, n_blocks=2, base_width=8)

    return TinySimSwap()
