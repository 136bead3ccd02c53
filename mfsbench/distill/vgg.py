"""VGG-16 feature extractor for the perceptual loss L_per (Eq. 3), written here: no torchvision.

The paper cites Johnson et al.'s perceptual loss and names no layers; ours are Johnson's VGG-16
``relu1_2, relu2_2, relu3_3, relu4_3`` (config ``[loss] perceptual_layers``). Module names equal
torchvision's ``vgg16().features`` (``features.0.weight`` … ``features.28.bias``), so a VGG-16 state
dict the user supplies loads by name and strictly. torchvision itself does not import beside the
pinned torch, and nothing downloads at run time, so weights come only from ``perceptual_weights``.
``width`` shrinks every layer proportionally (64 is the real network); only tests shrink it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mfsbench.distill.extras import region_mean
from mfsbench.models.arcface import imagenet_normalize

#: VGG-16 ("D"): channels per conv, "M" = max-pool; in units of the first width (64).
_PLAN = (1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8)
#: relu name → index in ``features`` after which it is read.
LAYER_INDEX = {
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22, "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}


class VGG16Features(nn.Module):
    """``features`` of VGG-16 up to the deepest requested relu; :meth:`forward` returns those maps."""

    def __init__(self, layers: list[str], width: int = 64) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in LAYER_INDEX]
        if unknown:
            from mfsbench.errors import BadInputError

            raise BadInputError(f"unknown VGG-16 layer(s) {', '.join(unknown)}; use {', '.join(LAYER_INDEX)}")
        self.layers = list(layers)
        last = max(LAYER_INDEX[name] for name in layers)
        modules: list[nn.Module] = []
        cin = 3
        for item in _PLAN:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
                continue
            cout = int(item) * width
            modules += [nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU(inplace=False)]
            cin = cout
        self.features = nn.Sequential(*modules[: last + 1])
        self._taps = {LAYER_INDEX[name]: name for name in layers}

    def forward(self, rgb01: Tensor) -> list[Tensor]:
        x = imagenet_normalize(rgb01)
        out = []
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._taps:
                out.append(x)
        return out


def perceptual_per_sample(a_features: list[Tensor], b_features: list[Tensor],
                          region: Tensor | None = None) -> Tensor:
    """Σ_i (1/N_i)‖F_i(a) − F_i(b)‖² per sample (Johnson's squared L2, normalised by the map size).

    With ``region`` (B×1×H×W, 1 inside), each map's squared error is averaged over the region resized
    to that map (content-aware KD); without it, over the whole map.
    """
    total = a_features[0].new_zeros(a_features[0].shape[0], dtype=torch.float32)
    for fa, fb in zip(a_features, b_features, strict=True):
        total = total + region_mean((fa.float() - fb.float()).pow(2), region)
    return total
