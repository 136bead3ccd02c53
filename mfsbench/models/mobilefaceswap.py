"""The MobileFaceSwap student: Identity Injection Network (IIN) + Identity-aware Dynamic Network (IDN).

Ported from what the official Paddle release (``Seanseattle/MobileFaceSwap``) actually runs, not from
the paper's prose; ``specs/mobilefaceswap.md`` lists every layer. The parts:

* **IIN** (``BuildFaceSwap`` in the official code, :class:`InjectionNetwork` here) turns a source face
  into the IDN's weights, once per identity:

  - ``predictor`` (:class:`WeightPrediction`) predicts the 9 *depthwise* kernels from ArcFace's
    512×7×7 feature map (not from the embedding, as the paper's Eq. 1 suggests);
  - ``EncoderModulation`` / ``DecoderModulation`` (:class:`Mod2Weight`) modulate and demodulate 9
    learned *pointwise* kernels with the L2-normalised 512-d embedding, StyleGAN2-style with a
    ``1 + s`` scale and ``eps = 1e-16`` inside the rsqrt.

* **IDN** (:class:`InjectedIDN`) is a U-Net of 9 depthwise-separable convs with no normalisation:
  5 encoder blocks (dw 4×4 stride 2 → pw 1×1 → LeakyReLU 0.1), 4 decoder blocks (bilinear ×2 with
  ``align_corners=True`` → dw 3×3 → pw → LeakyReLU → concat ``[decoder, encoder skip]``), and a
  static output head ``final``. Its dynamic convs have no bias (the Paddle biases are never loaded
  and stay 0).
* **Weak semantic fusion mask** (``mask``): 5 static upsampling blocks on the *detached* bottleneck,
  ending in a sigmoid; the network returns ``out * mask + target * (1 - mask)`` and the mask.

Module names equal the official checkpoint keys: :class:`InjectionNetwork`'s ``state_dict`` has exactly
the 167 keys of ``MobileFaceSwap_224.pdparams`` (after Paddle's BN renames) and ``id_net`` those of
``arcface.pdparams``. The same classes, switched by :class:`StudentConfig`, build the five
architecture ablations of Table 2 (:func:`student_variant`, registered in ``mfsbench.zoo.ablations``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfsbench.counting import mark_identity_derived
from mfsbench.models.arcface import ArcFaceIRSE, l2_normalize
from mfsbench.models.base import Identity, SwapNet, frozen

LEAK = 0.1
DEMOD_EPS = 1e-16

PointwiseMode = Literal["modulation", "adain", "static"]


@dataclass(frozen=True)
class StudentConfig:
    """Shape and wiring of a student; the defaults are the released 224/256 network.

    ``encoder`` is the channel chain of the 5 encoder blocks (input 3 → bottleneck 512);
    ``decoder`` the pointwise outputs of the 4 decoder blocks. The switches build the ablations.
    """

    encoder: tuple[int, ...] = (3, 32, 64, 128, 256, 512)
    decoder: tuple[int, ...] = (256, 128, 64, 32)
    mask: tuple[int, ...] = (128, 64, 32, 8, 2)
    final_hidden: int = 8
    id_dim: int = 512
    id_map_channels: int = 512
    skips: bool = True
    predict_depthwise: bool = True
    pointwise: PointwiseMode = "modulation"
    fusion_mask: bool = True

    @property
    def encoder_depthwise(self) -> tuple[int, ...]:
        """Channels of the encoder dw kernels: the input of each encoder block."""
        return self.encoder[:-1]

    @property
    def skip_channels(self) -> tuple[int, ...]:
        """Encoder outputs concatenated after D0, D1, D2 (E3, E2, E1); E0 is never a skip."""
        if not self.skips:
            return (0,) * len(self.decoder)
        skips = tuple(reversed(self.encoder[2:-1]))  # E3, E2, E1 outputs
        return (*skips, *(0,) * (len(self.decoder) - len(skips)))

    @property
    def decoder_depthwise(self) -> tuple[int, ...]:
        """Channels of the decoder dw kernels: bottleneck, then each block's output + its skip."""
        channels = [self.encoder[-1]]
        for out, skip in zip(self.decoder[:-1], self.skip_channels[:-1], strict=True):
            channels.append(out + skip)
        return tuple(channels)

    @property
    def pointwise_pairs(self) -> tuple[tuple[int, int], ...]:
        """(cin, cout) of the 9 pointwise convs: encoder then decoder."""
        enc = tuple(zip(self.encoder[:-1], self.encoder[1:], strict=True))
        dec = tuple(zip(self.decoder_depthwise, self.decoder, strict=True))
        return enc + dec


class ConvBlock(nn.Module):
    """Predictor block: conv3×3 → BN → LeakyReLU gives ``out``; a 3×3 ``weight`` head reads a kernel map."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm = nn.BatchNorm2d(cout)
        self.weight = nn.Conv2d(cout, cout, 3, 1, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = F.leaky_relu(self.norm(self.conv(x)), LEAK)
        return out, self.weight(out)


class WeightPrediction(nn.Module):
    """Predicts the depthwise kernels from the 512×7×7 identity map (``predictor.*`` keys).

    ``first`` (k4) shrinks 7×7 to the 4×4 encoder kernels; ``first_decoder`` (k2) shrinks that to the
    3×3 decoder kernels. The kernels are raw conv outputs: no activation, no normalisation.
    """

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        width = config.id_map_channels
        # registration order = Paddle's state-dict order, so a written .pdparams is byte-identical
        self.first = nn.Conv2d(width, width, 4, 1, 0)
        self.first_decoder = nn.Conv2d(width, width, 2, 1, 0)
        self.decoder_norm = nn.BatchNorm2d(width)
        self.norm = nn.BatchNorm2d(width)
        enc_chain = (width, *reversed(config.encoder_depthwise))
        self.encoder = nn.ModuleList(ConvBlock(a, b) for a, b in itertools.pairwise(enc_chain))
        dec_chain = (width, *config.decoder_depthwise)
        self.decoder = nn.ModuleList(ConvBlock(a, b) for a, b in itertools.pairwise(dec_chain))

    def forward(self, id_map: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        z = F.leaky_relu(self.norm(self.first(id_map)), LEAK)
        encoder_kernels = []
        out = z
        for block in self.encoder:
            out, kernel = block(out)
            encoder_kernels.append(_as_depthwise(kernel))
        encoder_kernels.reverse()  # the deepest (3-channel) map is E0's kernel
        decoder_kernels = []
        out = F.leaky_relu(self.decoder_norm(self.first_decoder(z)), LEAK)
        for block in self.decoder:
            out, kernel = block(out)
            decoder_kernels.append(_as_depthwise(kernel))
        return encoder_kernels, decoder_kernels


def _as_depthwise(kernel_map: Tensor) -> Tensor:
    """(1, C, k, k) predicted map → (C, 1, k, k) depthwise weight (batch 1, as the official code)."""
    return kernel_map[0].unsqueeze(1)


class Mod2Weight(nn.Module):
    """A learned 1×1 kernel, modulated by ``1 + style(e)`` per input channel, then demodulated."""

    def __init__(self, cin: int, cout: int, id_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 1, 1) / cin**0.5)
        self.style = nn.Linear(id_dim, cin)

    def forward(self, embedding: Tensor) -> Tensor:
        s = self.style(embedding)  # (1, cin)
        w = self.weight.unsqueeze(0) * (1 + s)[:, None, :, None, None]
        w = w * torch.rsqrt(w.pow(2).sum(dim=(2, 3, 4), keepdim=True) + DEMOD_EPS)
        return w.reshape(-1, *self.weight.shape[1:])  # batch 1: (cout, cin, 1, 1)


class AdaINStyle(nn.Module):
    """Ablation ``mfs_adain``: a linear from the embedding to a (γ, β) pair per output channel."""

    def __init__(self, channels: int, id_dim: int) -> None:
        super().__init__()
        self.style = nn.Linear(id_dim, 2 * channels)

    def forward(self, embedding: Tensor) -> Tensor:
        return self.style(embedding)  # (1, 2C): γ then β


def _upsample() -> nn.Upsample:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)


def _output_head(cin: int, hidden: int) -> nn.Sequential:
    """``final``: up ×2 → 1×1 → BN → LReLU → 3×3 → BN → LReLU → 3×3 → tanh (keys final.1/2/4/5/7)."""
    return nn.Sequential(
        _upsample(),
        nn.Conv2d(cin, hidden, 1),
        nn.BatchNorm2d(hidden),
        nn.LeakyReLU(LEAK),
        nn.Conv2d(hidden, 3, 3, 1, 1),
        nn.BatchNorm2d(3),
        nn.LeakyReLU(LEAK),
        nn.Conv2d(3, 3, 3, 1, 1),
        nn.Tanh(),
    )


def _mask_head(cin: int, channels: tuple[int, ...]) -> nn.Sequential:
    """``mask``: 5 × (up ×2 → dw 3×3 with bias → 1×1 → BN → LReLU), then 3×3 → 1 and a sigmoid."""
    blocks: list[nn.Module] = []
    for cout in channels:
        blocks.append(
            nn.Sequential(
                _upsample(),
                nn.Conv2d(cin, cin, 3, 1, 1, groups=cin),
                nn.Conv2d(cin, cout, 1),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(LEAK),
            )
        )
        cin = cout
    blocks += [nn.Conv2d(cin, 1, 3, 1, 1), nn.Sigmoid()]
    return nn.Sequential(*blocks)


class InjectionNetwork(nn.Module):
    """Everything stored in ``MobileFaceSwap_224.pdparams``: the IIN plus the static heads.

    The official class is ``BuildFaceSwap``; ``final`` and ``mask`` live here (as in the checkpoint)
    and are *shared* with the IDN at injection time. Ablations that drop prediction or modulation
    keep static kernels here instead (``static_depthwise`` / ``static_pointwise``).
    """

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        pairs = config.pointwise_pairs
        n_enc = len(config.encoder) - 1
        if config.pointwise == "modulation":
            self.EncoderModulation = nn.ModuleList(
                Mod2Weight(cin, cout, config.id_dim) for cin, cout in pairs[:n_enc]
            )
            self.DecoderModulation = nn.ModuleList(
                Mod2Weight(cin, cout, config.id_dim) for cin, cout in pairs[n_enc:]
            )
        else:
            self.static_pointwise = nn.ParameterList(
                nn.Parameter(torch.randn(cout, cin, 1, 1) / cin**0.5) for cin, cout in pairs
            )
        if config.pointwise == "adain":
            self.AdaIN = nn.ModuleList(AdaINStyle(cout, config.id_dim) for _, cout in pairs)
        if config.predict_depthwise:
            self.predictor = WeightPrediction(config)
        else:
            shapes = [(c, 4) for c in config.encoder_depthwise] + [(c, 3) for c in config.decoder_depthwise]
            self.static_depthwise = nn.ParameterList(
                nn.Parameter(torch.randn(c, 1, k, k) / k) for c, k in shapes
            )
        self.final = _output_head(config.decoder[-1], config.final_hidden)
        if config.fusion_mask:
            self.mask = _mask_head(config.encoder[-1], config.mask)


class IdentityStage(nn.Module):
    """Once per source: ArcFace → kernels (and AdaIN vectors), as the tuple :class:`InjectedIDN` takes.

    Output order: the 9 depthwise kernels if predicted, then the 9 pointwise kernels if modulated,
    then the 9 AdaIN (γ, β) vectors for the AdaIN ablation. It holds only the modules it runs, so
    its parameter count is exactly "Id network + IIN".
    """

    def __init__(self, id_net: ArcFaceIRSE, weights: InjectionNetwork, config: StudentConfig) -> None:
        super().__init__()
        self.config = config
        self.id_net = id_net
        if config.predict_depthwise:
            self.predictor = weights.predictor
        if config.pointwise == "modulation":
            self.EncoderModulation = weights.EncoderModulation
            self.DecoderModulation = weights.DecoderModulation
        if config.pointwise == "adain":
            self.AdaIN = weights.AdaIN

    def forward(self, source: Tensor) -> Identity:
        embedding, id_map = self.id_net(source)
        embedding = l2_normalize(embedding)
        outputs: list[Tensor] = []
        if self.config.predict_depthwise:
            encoder_kernels, decoder_kernels = self.predictor(id_map)
            outputs += encoder_kernels + decoder_kernels
        if self.config.pointwise == "modulation":
            modulations = [*self.EncoderModulation, *self.DecoderModulation]
            outputs += [modulate(embedding) for modulate in modulations]
        if self.config.pointwise == "adain":
            outputs += [style(embedding)[0] for style in self.AdaIN]
        return tuple(outputs)


class SeparableBlock(nn.Module):
    """dw conv → pw conv (no activation between), bias-free: keys ``{0,1}.weight`` of the runtime UNet."""

    def __init__(self, depthwise: Tensor, pointwise: Tensor, stride: int) -> None:
        super().__init__()
        channels, _, k, _ = depthwise.shape
        cout, cin = pointwise.shape[:2]
        padding = 1  # k4/s2/p1 halves the map; k3/s1/p1 keeps it
        dw = nn.Conv2d(channels, channels, k, stride, padding, groups=channels, bias=False)
        pw = nn.Conv2d(cin, cout, 1, bias=False)
        dw.weight = depthwise if isinstance(depthwise, nn.Parameter) else _injected(depthwise)
        pw.weight = pointwise if isinstance(pointwise, nn.Parameter) else _injected(pointwise)
        self.add_module("0", dw)
        self.add_module("1", pw)

    def forward(self, x: Tensor) -> Tensor:
        return self.get_submodule("1")(self.get_submodule("0")(x))


def _injected(tensor: Tensor) -> nn.Parameter:
    return mark_identity_derived(frozen(tensor))


def instance_norm(x: Tensor) -> Tensor:
    """Parameter-free IN written as mean and rsqrt (the SimSwap form), used by the AdaIN ablation."""
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return x * torch.rsqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + 1e-8)


class InjectedIDN(nn.Module):
    """The per-frame network with one identity injected: what video mode runs and exports.

    ``forward(target)`` takes an RGB face in [0, 1] and returns ``(swapped, mask)``, both in [0, 1];
    without a fusion mask (ablation) the mask output is all ones.
    """

    def __init__(self, config: StudentConfig, weights: InjectionNetwork, identity: Identity) -> None:
        super().__init__()
        self.config = config
        queue = list(identity)
        n_enc = len(config.encoder) - 1
        n_blocks = n_enc + len(config.decoder)
        depthwise = queue[:n_blocks] if config.predict_depthwise else list(weights.static_depthwise)
        if config.predict_depthwise:
            queue = queue[n_blocks:]
        if config.pointwise == "modulation":
            pointwise, queue = queue[:n_blocks], queue[n_blocks:]
        else:
            pointwise = list(weights.static_pointwise)
        self.Encoder = nn.ModuleList(
            SeparableBlock(depthwise[i], pointwise[i], stride=2) for i in range(n_enc)
        )
        self.Decoder = nn.ModuleList(
            SeparableBlock(depthwise[i], pointwise[i], stride=1) for i in range(n_enc, n_blocks)
        )
        self.styles = nn.ParameterList(_injected(v) for v in queue) if config.pointwise == "adain" else None
        self.final = weights.final
        self.mask = weights.mask if config.fusion_mask else None
        self.up = _upsample()
        #: set by :meth:`rewrite_for_deployment`: ``final`` ends in a sigmoid and the blend is folded
        self.deployment_form = False
        #: the swap command's torch runtime sets this: each activation overwrites its conv's fresh output
        #: instead of allocating another 224² map (measured 46.7 → 40.6 ms per frame on 2 loaded cores,
        #: same outputs); off for tracing, export and counting, which see the graph as written
        self.inplace_activations = False

    def rewrite_for_deployment(self) -> None:
        """Rewrite the per-frame tail into an algebraically identical form that does less work.

        Called by ``mfsbench.export.stages.export_ready`` on a *copy* of the stage (it changes the
        shared ``final`` head in place); torch runs and parity references keep the official form.

        * ``(1 + tanh(z)) / 2 = sigmoid(2z)``: the last conv of ``final`` is scaled by 2 and its
          ``Tanh`` becomes a ``Sigmoid``, which drops an add and a multiply over 224×224×3;
        * ``out · m + (1 − m) · target = target + m · (out − target)``: three elementwise ops
          instead of four.

        Measured (fastest of 300 runs, LiteRT fp32, 2 threads): 6.86–6.88 → 6.69–6.72 ms; OpenVINO
        f32 8.40–8.62 → 7.69–8.02 ms; ONNX Runtime within noise.
        """
        if self.deployment_form:
            return
        last_conv, squash = self.final[-2], self.final[-1]
        if not (isinstance(last_conv, nn.Conv2d) and isinstance(squash, nn.Tanh)):
            raise TypeError("final head does not end in Conv2d → Tanh; nothing to rewrite")
        with torch.no_grad():
            last_conv.weight.mul_(2)
            if last_conv.bias is not None:
                last_conv.bias.mul_(2)
        self.final[-1] = nn.Sigmoid()
        self.deployment_form = True

    def _activate(self, x: Tensor, index: int) -> Tensor:
        if self.styles is not None:
            gamma, beta = self.styles[index].view(2, -1, 1, 1)
            x = instance_norm(x) * (1 + gamma) + beta
        return F.leaky_relu(x, LEAK, inplace=self.inplace_activations)

    def forward(self, target: Tensor) -> tuple[Tensor, Tensor]:
        x = (target - 0.5) / 0.5
        features = []
        for index, block in enumerate(self.Encoder):
            x = self._activate(block(x), index)
            features.append(x)
        bottleneck = x
        skips = list(reversed(features[1:-1])) if self.config.skips else []
        n_enc = len(self.Encoder)
        for index, block in enumerate(self.Decoder):
            x = self._activate(block(self.up(x)), n_enc + index)
            if index < len(skips):
                x = torch.cat([x, skips[index]], dim=1)
        out = self.final(x) if self.deployment_form else (1 + self.final(x)) / 2
        if self.mask is None:
            return out, torch.ones_like(out[:, :1])
        mask = self.mask(bottleneck.detach())
        if self.deployment_form:
            return target + mask * (out - target), mask
        return out * mask + (1 - mask) * target, mask


class MobileFaceSwap(SwapNet):
    """ArcFace IR-SE-101 + the student; ``id_net`` and ``swap`` load the two official checkpoints."""

    def __init__(self, config: StudentConfig | None = None, id_net: ArcFaceIRSE | None = None) -> None:
        super().__init__()
        self.config = config or StudentConfig()
        self.id_net = id_net or ArcFaceIRSE()
        self.swap = InjectionNetwork(self.config)

    def identity_stage(self) -> IdentityStage:
        return IdentityStage(self.id_net, self.swap, self.config)

    def frame_stage(self, identity: Identity | None) -> InjectedIDN:
        if identity is None:
            raise ValueError("the student's frame network needs an identity: run identity_stage() first")
        return InjectedIDN(self.config, self.swap, identity)

    def forward(self, source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Image mode: inject ``source`` (a normalised 112×112 crop), then swap ``target``."""
        return self.frame_stage(self.identity_stage()(source))(target)


def student_variant(**changes: Any) -> MobileFaceSwap:
    """The released 224 student with some :class:`StudentConfig` switches changed: an ablation.

    Built from the same classes, so the difference in counts between a variant and the student is
    the difference in design and nothing else.
    """
    return MobileFaceSwap(replace(StudentConfig(), **changes))
