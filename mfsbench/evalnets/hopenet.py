"""Hopenet (Ruiz et al. 2018): the head-pose network behind the "Pose" column of Table 1.

``Hopenet(torchvision.models.resnet.Bottleneck, [3, 4, 6, 3], 66)`` of natanielruiz/deep-head-pose,
rewritten without torchvision (whose registry build needs CUDA) but with torchvision's module names,
so ``hopenet_robust_alpha1.pkl`` loads strictly by key. Three 66-bin classification heads (yaw,
pitch, roll) are decoded to degrees by :func:`decode_degrees`. The vestigial ``fc_finetune``
(Linear(2051, 3)) is never run but is in the checkpoint, so it is kept for strict loading.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Hopenet classifies each angle into 66 bins of 3° covering [-99°, +99°).
BINS = 66


class Bottleneck(nn.Module):
    """torchvision's ResNet-50 block: 1×1 → 3×3 (the stride lives here) → 1×1 (×4), + shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Hopenet(nn.Module):
    """ResNet-50 trunk → AvgPool2d(7) → three Linear(2048, 66) heads; input 224×224, ImageNet-normalised.

    ``forward`` returns the (yaw, pitch, roll) logits in the official head order; :meth:`degrees`
    decodes them. AvgPool2d(7) (not adaptive) is the official layer, so other sizes give wrong maps.
    """

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 6, 3), num_bins: int = BINS) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AvgPool2d(7)
        width = 512 * Bottleneck.expansion
        self.fc_yaw = nn.Linear(width, num_bins)
        self.fc_pitch = nn.Linear(width, num_bins)
        self.fc_roll = nn.Linear(width, num_bins)
        self.fc_finetune = nn.Linear(width + 3, 3)  # vestigial: in the checkpoint, never in forward

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc_yaw(x), self.fc_pitch(x), self.fc_roll(x)

    def degrees(self, x: Tensor) -> Tensor:
        """(N, 3) angles in degrees, columns yaw, pitch, roll."""
        return torch.stack([decode_degrees(logits) for logits in self(x)], dim=1)


def decode_degrees(logits: Tensor) -> Tensor:
    """Expected bin under the softmax, mapped to degrees: ``Σ softmax·idx · 3 − 99`` (the official test code).

    The expectation (not the arg-max bin) is what makes Hopenet's output continuous; bins are 3° wide
    and bin 0 starts at −99°.
    """
    idx = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (torch.softmax(logits, dim=1) * idx).sum(dim=1) * 3 - 99
