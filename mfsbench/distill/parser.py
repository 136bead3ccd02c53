"""The BiSeNet face parser behind the weak mask loss (Eq. 6), written here, and the background masks it gives.

The paper takes M_t from BiSeNet (Yu et al. 2018) "by combining the semantic labels corresponding to
the background" and says no more. The face parser nearly every face-swap code base uses is the public
face-parsing BiSeNet trained on CelebAMask-HQ (19 classes, ``79999_iter.pth``); this module is that
architecture, written from its description, with its module and key names (``cp.resnet.*``,
``cp.arm16/arm32``, ``cp.conv_head16/32``, ``cp.conv_avg``, ``ffm.*``, ``conv_out``, ``conv_out16``,
``conv_out32``) so the user's copy of that checkpoint loads strictly by name. Which labels count as
background is our choice (``[loss] bg_labels``, CelebAMask-HQ order: 0 background, 14 neck,
15 necklace, 16 cloth, 17 hair, 18 hat).

The two auxiliary heads (``conv_out16/32``) exist so the checkpoint loads strictly; they only train the
parser, so :meth:`BiSeNet.forward` does not run them. The parser is frozen and runs once per crop,
before training (:func:`background_masks`): no training step runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfsbench.distill.resnet import ResNet18
from mfsbench.errors import BadInputError
from mfsbench.models.arcface import imagenet_normalize

#: CelebAMask-HQ's 19 classes in the order the public face-parsing BiSeNet predicts them.
LABELS = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
          "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class Head(nn.Module):
    """3×3 ConvBNReLU then a 1×1 classifier (BiSeNetOutput)."""

    def __init__(self, cin: int, mid: int, classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, classes, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(self.conv(x))


class AttentionRefinement(nn.Module):
    """A 3×3 ConvBNReLU whose output is gated per channel by its own global average."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))


class ContextPath(nn.Module):
    """ResNet-18 with attention refinement at 1/16 and 1/32 and a global-context term."""

    def __init__(self, width: int) -> None:
        super().__init__()
        mid = 2 * width
        self.resnet = ResNet18(width)
        self.arm16 = AttentionRefinement(4 * width, mid)
        self.arm32 = AttentionRefinement(8 * width, mid)
        self.conv_head32 = ConvBNReLU(mid, mid)
        self.conv_head16 = ConvBNReLU(mid, mid)
        self.conv_avg = ConvBNReLU(8 * width, mid, 1, 1, 0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        context = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))
        up32 = F.interpolate(self.arm32(feat32) + context, feat16.shape[2:], mode="nearest")
        up32 = self.conv_head32(up32)
        up16 = F.interpolate(self.arm16(feat16) + up32, feat8.shape[2:], mode="nearest")
        return feat8, self.conv_head16(up16)


class FeatureFusion(nn.Module):
    """Concatenate spatial and context features, 1×1 ConvBNReLU, add a squeeze-excite re-weighting."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1, 1, 0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        gate = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat * gate + feat


class BiSeNet(nn.Module):
    """Face-parsing BiSeNet: ImageNet-normalised RGB → per-pixel logits of ``classes`` labels."""

    def __init__(self, classes: int = 19, width: int = 64) -> None:
        super().__init__()
        self.classes, self.width = classes, width
        self.cp = ContextPath(width)
        self.ffm = FeatureFusion(4 * width, 4 * width)
        self.conv_out = Head(4 * width, 4 * width, classes)
        self.conv_out16 = Head(2 * width, width, classes)
        self.conv_out32 = Head(2 * width, width, classes)

    def forward(self, x: Tensor) -> Tensor:
        feat8, context8 = self.cp(x)
        logits = self.conv_out(self.ffm(feat8, context8))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)


def load_parser(path: str, width: int = 64) -> tuple[BiSeNet, dict[str, Any]]:
    """The user's face-parsing checkpoint, strictly by name and shape, finite; and its record entry."""
    from mfsbench.checkpoints.digest import sha256_file
    from mfsbench.checkpoints.mapping import load_strict
    from mfsbench.distill.nets import read_state_dict

    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"[loss] parser_weights {file} not found; pass the face-parsing BiSeNet "
                            "checkpoint (79999_iter.pth) or set mask_source = \"ellipse\"")
    state = read_state_dict(file)
    classes = state["conv_out.conv_out.weight"].shape[0] if "conv_out.conv_out.weight" in state else 19
    parser = BiSeNet(int(classes), width)
    load_strict(parser, state, f"[loss] parser_weights {file}")
    record = {"role": "parser", "path": str(file), "sha256": sha256_file(file),
              "format": "bisenet_state_dict", "keys": len(state), "classes": int(classes)}
    return parser, record


@torch.no_grad()
def parse_labels(parser: nn.Module, rgb01: Tensor, size: int) -> Tensor:
    """Label map (B×H×W, int64) of RGB crops in [0, 1]: resized to ``size`` for the parser (the public
    code parses at 512), logits resized back to the crop, arg-max."""
    height, width = rgb01.shape[2:]
    x = F.interpolate(rgb01, (size, size), mode="bilinear", align_corners=False) if height != size else rgb01
    logits = parser(imagenet_normalize(x)).float()
    if logits.shape[2:] != (height, width):
        logits = F.interpolate(logits, (height, width), mode="bilinear", align_corners=True)
    return logits.argmax(1)


def background_masks(parser: nn.Module, crops: Tensor, labels: list[int], size: int,
                     chunk: int = 16) -> Tensor:
    """1 where the parser labels a pixel background (any of ``labels``), else 0: N×1×H×W uint8, for every
    crop (uint8 N×3×H×W), computed once with the frozen parser in eval mode."""
    device = next(parser.parameters()).device
    wanted = torch.tensor(sorted(set(labels)), device=device)
    parser.eval()
    masks = []
    for start in range(0, len(crops), chunk):
        rgb = crops[start: start + chunk].to(device).float() / 255.0
        masks.append(torch.isin(parse_labels(parser, rgb, size), wanted).to(torch.uint8)[:, None].cpu())
    return torch.cat(masks) if masks else torch.zeros(0, 1, *crops.shape[2:], dtype=torch.uint8)
