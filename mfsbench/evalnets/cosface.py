"""CosFace's SphereFace-20 backbone (MuggleWang/CosFace_pytorch ``net.sphere(type=20)``), for ID retrieval.

Not clcarwin's ``sphere20a``: same topology, but that one names its layers ``conv1_1``… and puts
biases on the residual convs, so the CASIA-WebFace ``ACC99.28.pth`` loads only into this layout:
``layer{1..4}.0`` a stride-2 conv *with* bias, ``.1`` a per-channel PReLU, then residual blocks whose
two 3×3 convs are bias-free, each followed by its own PReLU. 46 keys, 22.667M parameters. Input is
an aligned 112×96 (H×W) RGB crop in [−1, 1]; the output is the raw 512-d feature.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: (channels, residual blocks) of the four stages of ``sphere(type=20)``.
STAGES = ((64, 1), (128, 2), (256, 4), (512, 1))
INPUT_HW = (112, 96)


class Block(nn.Module):
    """``x + prelu2(conv2(prelu1(conv1(x))))`` with bias-free 3×3 convs and per-channel PReLUs."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.prelu1 = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.prelu2 = nn.PReLU(planes)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.prelu2(self.conv2(self.prelu1(self.conv1(x))))


def _stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.PReLU(cout), *(Block(cout) for _ in range(blocks)))


class SphereFace20(nn.Module):
    """Four stride-2 stages (112×96 → 7×6), flatten 512·7·6 = 21504, ``fc`` → 512."""

    def __init__(self, feature_dim: int = 512) -> None:
        super().__init__()
        cin = 3
        stages = []
        for cout, blocks in STAGES:
            stages.append(_stage(cin, cout, blocks))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        side_h, side_w = INPUT_HW[0] // 16, INPUT_HW[1] // 16
        self.fc = nn.Linear(cin * side_h * side_w, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(x, 1))
