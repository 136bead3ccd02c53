"""The Id Network: ArcFace IR-SE-101 as SimSwap and MobileFaceSwap run it (Table 1, 52.2M / 7.52G).

Layer for layer this is foamliu's InsightFace-v2 ``ResNet(IRBlock, [3, 4, 23, 3], use_se=True)``, the
network inside SimSwap's ``arcface_checkpoint.tar`` and MobileFaceSwap's ``arcface.pdparams``. Module
names equal the checkpoint keys (``conv1``, ``layer3.17.se.fc.0``, ``bn3`` ...), so the official
tensors load by name. Two details decide whether the counts match the paper:

* the stem conv has **padding 0** (112 → 110), then a 2×2 max-pool (→ 55); padding 1 adds 0.03G;
* each block applies its single PReLU module twice (after bn1 and after the residual add), so the
  parameter is shared and counted once.

The head returns both the 512-d embedding (fc + BatchNorm1d, *not* normalised) and the 512×7×7 map
after ``bn2``; MobileFaceSwap predicts its depthwise kernels from that map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfsbench.errors import BadInputError
from mfsbench.models.base import Identity, SwapNet

#: ImageNet statistics: the ArcFace of SimSwap/MobileFaceSwap was trained on RGB/255 normalised
#: with these, not with the usual (x - 127.5) / 127.5.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SEBlock(nn.Module):
    """Squeeze-and-excitation with a PReLU between the two linears (``se.fc.{0,1,2}``)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.PReLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        scale = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * scale


class IRBlock(nn.Module):
    """Improved residual block: BN → conv3×3 → BN → PReLU → conv3×3(stride) → BN → SE, + shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, use_se: bool = True) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, inplanes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # downsample is registered before se, as in the official class: state-dict order = file order
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.use_se = use_se
        if use_se:
            self.se = SEBlock(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        if self.use_se:
            out = self.se(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + shortcut)


class ArcFaceIRSE(SwapNet):
    """IR-SE ResNet with the ArcFace head; ``layers=(3, 4, 23, 3)`` is the paper's Id Network.

    As a zoo member it is a one-stage network: its identity stage is itself, returning
    ``(embedding, feature_map)``.
    """

    def __init__(
        self,
        layers: tuple[int, int, int, int] = (3, 4, 23, 3),
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        embedding_dim: int = 512,
        input_size: int = 112,
        use_se: bool = True,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        stem = widths[0]
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(2, 2)
        inplanes = stem
        stages = []
        for index, (blocks, width) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if index == 0 else 2
            stage = [IRBlock(inplanes, width, stride, use_se)]
            stage += [IRBlock(width, width, 1, use_se) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
            inplanes = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm2d(inplanes)
        self.dropout = nn.Dropout()
        side = self.map_size(input_size)
        self.fc = nn.Linear(inplanes * side * side, embedding_dim)
        self.bn3 = nn.BatchNorm1d(embedding_dim)
        self.feature_channels = inplanes

    @staticmethod
    def map_size(input_size: int) -> int:
        """Side of the final map: stem conv (-2), max-pool (/2), then three stride-2 stages."""
        side = (input_size - 2) // 2
        for _ in range(3):
            side = (side + 1) // 2
        return side

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        feature_map = self.dropout(self.bn2(x))
        embedding = self.bn3(self.fc(torch.flatten(feature_map, 1)))
        return embedding, feature_map

    def identity_stage(self) -> nn.Module:
        return self

    def frame_stage(self, identity: Identity | None) -> nn.Module:
        """The Id network only embeds faces: it has no per-frame network (its spec has no frame stage)."""
        raise BadInputError("the Id network has no frame stage; use a swap model for per-frame work")


def l2_normalize(embedding: Tensor) -> Tensor:
    """``x / ||x||_2`` without an epsilon, as both official pipelines normalise the embedding."""
    return embedding / embedding.norm(p=2, dim=1, keepdim=True)


def imagenet_normalize(rgb01: Tensor) -> Tensor:
    """Normalise an RGB image in [0, 1] the way this ArcFace was trained."""
    mean = rgb01.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = rgb01.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (rgb01 - mean) / std


def resize_for_id(rgb01: Tensor, size: int = 112) -> Tensor:
    """Bilinear resize of an aligned crop to the Id network's input (MobileFaceSwap uses cv2 linear)."""
    if rgb01.shape[-1] == size:
        return rgb01
    return F.interpolate(rgb01, size=(size, size), mode="bilinear", align_corners=False)


__all__ = ["ArcFaceIRSE", "IRBlock", "Identity", "SEBlock", "imagenet_normalize", "l2_normalize"]
