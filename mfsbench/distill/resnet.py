"""ResNet-18, written here (torchvision does not import beside the pinned torch): the backbone of the
BiSeNet face parser (:mod:`mfsbench.distill.parser`) and of the image-quality regressor Q
(:mod:`mfsbench.distill.quality`).

Module names follow the public face-parsing BiSeNet's ``resnet.py`` (``conv1``, ``bn1``, ``layer1`` …
``layer4``, each a sequence of two basic blocks with ``conv1/bn1/conv2/bn2`` and a
``downsample.0/.1`` projection where the shape changes), which are also torchvision's names, so a
checkpoint of either loads by name. ``width`` scales every stage (64 is the real network; only tests
shrink it).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3×3 convs with BN and a residual; a 1×1 projection when channels or stride change."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))


class ResNet18(nn.Module):
    """The convolutional trunk (no classifier); :meth:`forward` returns the 1/8, 1/16 and 1/32 maps."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.width = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _stage(width, width, 1)
        self.layer2 = _stage(width, 2 * width, 2)
        self.layer3 = _stage(2 * width, 4 * width, 2)
        self.layer4 = _stage(4 * width, 8 * width, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)
