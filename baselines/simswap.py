"""SimSwap 224 (Chen et al., ACM MM 2020): the "SimSwap" and "Teacher (SimSwap)" rows of Table 1.

The generator mirrors ``Generator_Adain_Upsample(input_nc=3, output_nc=3, latent_size=512,
n_blocks=9, deep=False)`` of SimSwap's ``models/fs_networks.py``, the network saved as
``checkpoints/people/latest_net_G.pth``. Module names follow that file, so every key of the
official ``state_dict`` (``first_layer.1.weight``, ``BottleNeck.3.style2.linear.bias`` ...) exists
here with the same shape and the checkpoint loads by name. The id network is the ArcFace IR-SE-101
of :mod:`mfsbench.models.arcface`, reused as is.

Three details decide whether the counts match the paper (spec ``simswap_arcface_deepfakes.md``):

* the instance norm inside the residual blocks is written out as ``x - mean`` and
  ``rsqrt(mean(x²) + ε)``, exactly as the official file does; ``nn.InstanceNorm2d`` would make
  fvcore add 4 FLOPs per element (+0.029G);
* the decoder upsamples with ``nn.Upsample(mode="bilinear")`` (fvcore: 4 per output element);
* in video mode the 18 ``ApplyStyle`` linears are not part of the per-frame network: their γ/β
  depend only on the source identity, so the identity stage computes them once and the frame stage
  stores them as frozen parameters. That is the whole 55.05M → 45.6M difference.

The two multi-scale discriminators are training-only and are never counted by any row.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mfsbench.counting import mark_identity_derived
from mfsbench.errors import BadInputError
from mfsbench.models.arcface import ArcFaceIRSE, l2_normalize
from mfsbench.models.base import Identity, SwapNet, frozen

#: Width of the ArcFace embedding that drives every ``ApplyStyle``.
LATENT_SIZE = 512


class InstanceNorm(nn.Module):
    """Parameter-free instance norm, in the official hand-written form (not ``nn.InstanceNorm2d``).

    The official class centres the map, then scales by ``rsqrt(mean(x²) + 1e-8)``; written this way
    it is made of ops fvcore does not charge, which is what the paper's 48.2G contains.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = x - torch.mean(x, dim=(2, 3), keepdim=True)
        scale = torch.rsqrt(torch.mean(x * x, dim=(2, 3), keepdim=True) + self.eps)
        return x * scale


def modulate(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """SimSwap's AdaIN injection ``x·(γ + 1) + β``, shared by the image and the video path."""
    return x * (gamma + 1.0) + beta


class ApplyStyle(nn.Module):
    """``style = Linear(512, 2C)(id)``, split into per-channel (γ, β); key ``…style1.linear``."""

    def __init__(self, latent_size: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.linear = nn.Linear(latent_size, channels * 2)

    def predict(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """γ and β, each ``(B, C, 1, 1)``; the official code views the output as ``[B, 2, C, 1, 1]``."""
        style = self.linear(latent).view(-1, 2, self.channels, 1, 1)
        return style[:, 0], style[:, 1]

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        gamma, beta = self.predict(latent)
        return modulate(x, gamma, beta)


class FixedStyle(nn.Module):
    """An ``ApplyStyle`` whose γ/β were computed once from the source: the video-mode form.

    γ and β are frozen, identity-derived parameters, so the per-frame network's parameter count
    includes them (18 × 2 × 512 = 18,432) and exporters write them as initializers.
    """

    def __init__(self, gamma: Tensor, beta: Tensor) -> None:
        super().__init__()
        self.gamma = mark_identity_derived(frozen(gamma))
        self.beta = mark_identity_derived(frozen(beta))

    def forward(self, x: Tensor) -> Tensor:
        return modulate(x, self.gamma, self.beta)


def _conv_in(channels: int) -> nn.Sequential:
    """ReflectionPad(1) → Conv3×3 → InstanceNorm; the conv is index 1, as in the checkpoint."""
    return nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, kernel_size=3), InstanceNorm()
    )


class ResnetBlockAdain(nn.Module):
    """``ResnetBlock_Adain``: two conv+IN+AdaIN layers with a ReLU between, plus the identity skip."""

    def __init__(self, channels: int, latent_size: int) -> None:
        super().__init__()
        self.conv1 = _conv_in(channels)
        self.style1 = ApplyStyle(latent_size, channels)
        self.act1 = nn.ReLU()
        self.conv2 = _conv_in(channels)
        self.style2 = ApplyStyle(latent_size, channels)

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        y = self.act1(self.style1(self.conv1(x), latent))
        y = self.style2(self.conv2(y), latent)
        return x + y


class FixedStyleBlock(nn.Module):
    """A residual block of the frame stage: the static convs of a :class:`ResnetBlockAdain`
    (the same module objects, not copies) with its two styles replaced by :class:`FixedStyle`."""

    def __init__(self, block: ResnetBlockAdain, styles: tuple[Tensor, Tensor, Tensor, Tensor]) -> None:
        super().__init__()
        gamma1, beta1, gamma2, beta2 = styles
        self.conv1 = block.conv1
        self.style1 = FixedStyle(gamma1, beta1)
        self.act1 = block.act1
        self.conv2 = block.conv2
        self.style2 = FixedStyle(gamma2, beta2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.act1(self.style1(self.conv1(x)))
        return x + self.style2(self.conv2(y))


class _Trunk(nn.Module):
    """The static encoder and decoder, shared by the generator and its frame stage.

    Both classes hold the *same* ``first_layer``/``down*``/``up*``/``last_layer`` modules under the
    official names, so the image path and the video path run literally the same convolutions.
    """

    first_layer: nn.Sequential
    down1: nn.Sequential
    down2: nn.Sequential
    down3: nn.Sequential
    up3: nn.Sequential
    up2: nn.Sequential
    up1: nn.Sequential
    last_layer: nn.Sequential

    _PARTS = ("first_layer", "down1", "down2", "down3", "up3", "up2", "up1", "last_layer")

    def _share_trunk(self, other: _Trunk) -> None:
        for name in self._PARTS:
            setattr(self, name, getattr(other, name))

    def encode(self, x: Tensor) -> Tensor:
        return self.down3(self.down2(self.down1(self.first_layer(x))))

    def decode(self, x: Tensor) -> Tensor:
        x = self.last_layer(self.up1(self.up2(self.up3(x))))
        # The 224 model ends in Tanh and is trained on [0, 1] images, hence the rescale.
        return (x + 1) / 2


class SimSwapGenerator(_Trunk):
    """``Generator_Adain_Upsample(3, 3, 512, n_blocks=9, deep=False)`` with BatchNorm2d and
    reflection padding, the configuration ``fs_model.py`` builds for the 224 checkpoint."""

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        latent_size: int = LATENT_SIZE,
        n_blocks: int = 9,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        w = base_width
        self.first_layer = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(input_nc, w, kernel_size=7), nn.BatchNorm2d(w), nn.ReLU()
        )
        self.down1 = self._down(w, 2 * w)
        self.down2 = self._down(2 * w, 4 * w)
        self.down3 = self._down(4 * w, 8 * w)
        self.BottleNeck = nn.ModuleList(ResnetBlockAdain(8 * w, latent_size) for _ in range(n_blocks))
        self.up3 = self._up(8 * w, 4 * w)
        self.up2 = self._up(4 * w, 2 * w)
        self.up1 = self._up(2 * w, w)
        self.last_layer = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(w, output_nc, kernel_size=7), nn.Tanh()
        )

    @staticmethod
    def _down(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU()
        )

    @staticmethod
    def _up(cin: int, cout: int) -> nn.Sequential:
        # Index 0 is the parameter-free Upsample, so the conv and BN keys are ``up*.1`` / ``up*.2``.
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(cin, cout, kernel_size=3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )

    def styles(self) -> list[ApplyStyle]:
        """The 18 ``ApplyStyle`` modules in execution order (block 0 style1, style2, block 1 …)."""
        return [style for block in self.BottleNeck for style in (block.style1, block.style2)]

    def forward(self, target: Tensor, latent: Tensor) -> Tensor:
        """Swap: ``target`` RGB in [0, 1], ``latent`` the L2-normalised id embedding → RGB in [0, 1]."""
        x = self.encode(target)
        for block in self.BottleNeck:
            x = block(x, latent)
        return self.decode(x)


class SimSwapIdentityStage(nn.Module):
    """Once per source: ArcFace → L2 normalise → the 18 style linears → (γ, β) × 18.

    It holds ArcFace and the 18 linears only (shared with the generator), so its parameter count
    is the Id network plus 9,455,616 and never picks up a convolution of the generator.
    """

    def __init__(self, id_net: ArcFaceIRSE, styles: list[ApplyStyle]) -> None:
        super().__init__()
        self.id_net = id_net
        self.styles = nn.ModuleList(styles)

    def forward(self, source: Tensor) -> Identity:
        embedding, _ = self.id_net(source)
        latent = l2_normalize(embedding)
        out: list[Tensor] = []
        for style in self.styles:
            out.extend(style.predict(latent))
        return tuple(out)


class SimSwapFrameStage(_Trunk):
    """Once per frame: the generator with γ/β injected; no linear and no ArcFace runs here."""

    def __init__(self, generator: SimSwapGenerator, identity: Identity) -> None:
        super().__init__()
        expected = 4 * len(generator.BottleNeck)
        if len(identity) != expected:
            raise BadInputError(
                f"SimSwap's frame stage needs {expected} γ/β tensors from its identity stage, got "
                f"{len(identity)}; build it from SimSwap224.identity_stage()'s output"
            )
        self._share_trunk(generator)
        self.BottleNeck = nn.ModuleList(
            FixedStyleBlock(block, tuple(identity[4 * i : 4 * i + 4]))  # type: ignore[arg-type]
            for i, block in enumerate(generator.BottleNeck)
        )

    def forward(self, target: Tensor) -> Tensor:
        x = self.encode(target)
        for block in self.BottleNeck:
            x = block(x)
        return self.decode(x)


class SimSwap224(SwapNet):
    """SimSwap as the paper counts it: ``id_net`` (ArcFace at 112) + ``netG`` (the 224 generator).

    The attribute names are those of SimSwap's ``fsModel`` (``netArc`` there is ``id_net`` here,
    mfsbench's common name for the Id network).
    """

    def __init__(self) -> None:
        super().__init__()
        self.id_net = ArcFaceIRSE()
        self.netG = SimSwapGenerator()

    def embed(self, source: Tensor) -> Tensor:
        """L2-normalised id embedding of a 112×112 ImageNet-normalised RGB source."""
        embedding, _ = self.id_net(source)
        return l2_normalize(embedding)

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        """The image-mode path as the official inference runs it: embed, then the full generator."""
        return self.netG(target, self.embed(source))

    def identity_stage(self) -> SimSwapIdentityStage:
        # A stage is a new wrapper around shared modules: give it this model's train/eval mode so
        # that calling ``.train()``/``.eval()`` on it later is never a surprise for the BN layers.
        return SimSwapIdentityStage(self.id_net, self.netG.styles()).train(self.training)

    def frame_stage(self, identity: Identity | None) -> SimSwapFrameStage:
        if identity is None:
            raise BadInputError("SimSwap's frame stage needs the γ/β of its identity stage; run it first")
        return SimSwapFrameStage(self.netG, identity).train(self.training)
