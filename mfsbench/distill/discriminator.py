"""The discriminator behind L_adv, which the paper adds to Eq. 7 without describing.

Our choice (config ``[adv]``): a PatchGAN (pix2pix's N-layer discriminator) with spectral norm and
no normalisation layers, trained with the hinge loss SimSwap's 2022 ``train.py`` uses. Real images
are the targets, fakes the student outputs. It is small next to the frozen networks, so it does not
change what a step costs; a multi-scale or projected D can replace it behind the same two functions.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """4×4 stride-2 convs (``layers`` of them) with LeakyReLU 0.2, then a 1-channel patch map."""

    def __init__(self, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        modules: list[nn.Module] = [spectral_norm(nn.Conv2d(3, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        cin = width
        for i in range(1, layers):
            cout = width * min(2**i, 8)
            modules += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin = cout
        modules.append(spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1)))
        self.net = nn.Sequential(*modules)

    def forward(self, rgb01: Tensor) -> Tensor:
        return self.net(rgb01 * 2 - 1)


def d_hinge_loss(d: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """E[relu(1 − D(real))] + E[relu(1 + D(fake))], with ``fake`` detached by the caller."""
    return F.relu(1 - d(real)).mean() + F.relu(1 + d(fake)).mean()


def g_hinge_loss(d: nn.Module, fake: Tensor) -> Tensor:
    """The generator's hinge term −E[D(fake)] (L_adv of Eq. 7)."""
    return -d(fake).mean()
