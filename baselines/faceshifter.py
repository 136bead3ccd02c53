"""FaceShifter (Li et al. 2020) at 256: the "FaceShifter" and "Teacher (FaceShifter)" rows of Table 1.

This is a labelled **re-implementation**: FaceShifter has no official code, and MobileFaceSwap's own
FaceShifter (its distillation teacher) was never released. The architecture follows the FaceShifter
paper with the widths of the public re-implementations, in the "paper-faithful" variant of the spec
(``faceshifter_fsgan_eval_nets.md`` §3): 3×3 γ_att/β_att convolutions, a 1×1 single-channel mask
conv, parameter-free instance norm and a 512-d identity code. No natural configuration reproduces
the paper's 350M / 91.1G for AEI-Net; this one matches the parameters and not the FLOPs, and the
report shows the measured value beside the printed one.

Parts, in the order a swap runs them:

* **Identity network**: an IR-SE-50 (TreB1eN InsightFace_Pytorch ``Backbone(50, 'ir_se')`` layout),
  the id network of the taotaonice re-implementation. Its FLOPs at 112 equal the paper's
  image−video gap (6.3G). It holds no margin head: the 51,332-class ArcFace classifier
  (512×51,332 weights) is used only to train the recogniser, never to swap. The spec's hypothesis
  is that the paper's 71M image−video parameter gap counted that head (IR-SE-50 + head = 70.08M);
  a swap pipeline does not run it, so this module does not hold it and the counter cannot count it.
* **AEI-Net**: a U-Net multi-level attribute encoder (z_att^1..8) and the AAD generator whose eight
  AAD-ResBlks mix attribute maps and identity by a learned mask.
* **HEAR-Net** (optional second stage): a small U-Net that refines the AEI result from
  concat(Ŷ_s,t, ΔY_t). Following FaceShifter's Eq. 9–10, the heuristic error is
  ΔY_t = X_t − AEI-Net(X_t, X_t): the target reconstructed with *its own* identity. That needs the
  identity network and a second AAD-generator pass on every frame (the attribute maps of X_t are
  the same for both passes and are computed once). A cheaper Ŷ − X_t input would not be
  FaceShifter's HEAR-Net, so it is not offered.

Instance norm is ``nn.InstanceNorm2d(affine=False)``, as the public re-implementation writes it, so
fvcore charges it 4 FLOPs per element (~0.1G over the generator); the hand-written mean/var form
would be free under fvcore. The spec's reference figures were measured with the module form.

Stage split (image mode = identity + frame, video mode = frame):

* identity stage: IR-SE-50 on the 112×112 source → L2-normalised z_id → every layer of AEI-Net that
  sees only z_id (the z_id ConvTranspose to 1024@2² and the γ_id/β_id linears of all 21 AAD layers).
  It returns the 2×2 map followed by (γ_id, β_id) per AAD layer.
* frame stage: attribute encoder + AAD generator with those tensors injected as frozen
  identity-derived parameters (+ HEAR-Net and the target's own identity pass when enabled).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfsbench.counting import mark_identity_derived
from mfsbench.errors import BadInputError
from mfsbench.models.arcface import l2_normalize
from mfsbench.models.base import Identity, SwapNet, frozen

#: Width of the identity code z_id (the IR-SE-50 embedding).
ID_DIM = 512
#: Side of the identity network's input; its dense head fixes it.
ID_INPUT = 112
#: The public re-implementation feeds the id network the 256 crop's [19:237] window (the face without
#: the loose border, as the recogniser was trained), resized to 112. Expressed as a fraction of the side.
ID_CROP_MARGIN = 19 / 256


# --- IR-SE-50 identity network -------------------------------------------------------------------


class SEModule(nn.Module):
    """Squeeze-and-excitation with bias-free 1×1 convs and a ReLU (the TreB1eN form, not the FC/PReLU
    form of :mod:`mfsbench.models.arcface`)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIRSE(nn.Module):
    """``bottleneck_IR_SE``: BN → conv3×3 → PReLU → conv3×3(stride) → BN → SE, plus the shortcut.

    The shortcut is a strided identity (a 1×1 max-pool) when the width is kept, else conv1×1 + BN.
    Unlike the IR-SE-101 of the paper's Id network, the *first* unit of every stage has stride 2.
    """

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.shortcut: nn.Module
        if cin == cout:
            self.shortcut = nn.MaxPool2d(1, stride)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.residual = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            SEModule(cout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class IRSEBackbone(nn.Module):
    """IR-SE ResNet in the TreB1eN layout; the defaults are IR-SE-50 (units 3, 4, 14, 3).

    Returns the 512-d embedding after BatchNorm1d, *not* normalised: the caller L2-normalises it,
    so the identity stage's output is z_id exactly as AEI-Net consumes it.
    """

    def __init__(
        self,
        units: Sequence[int] = (3, 4, 14, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        embedding_dim: int = ID_DIM,
        input_size: int = ID_INPUT,
        drop_ratio: float = 0.6,
    ) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0])
        )
        blocks: list[nn.Module] = []
        cin = widths[0]
        for count, width in zip(units, widths, strict=True):
            blocks.append(BottleneckIRSE(cin, width, 2))
            blocks.extend(BottleneckIRSE(width, width, 1) for _ in range(count - 1))
            cin = width
        self.body = nn.Sequential(*blocks)
        side = input_size // 2 ** len(units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(cin * side * side, embedding_dim),
            nn.BatchNorm1d(embedding_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.output_layer(self.body(self.input_layer(x)))


# --- AEI-Net: multi-level attribute encoder ------------------------------------------------------


def _down4x4(cin: int, cout: int) -> nn.Sequential:
    """Conv4×4 stride 2 → BN → LeakyReLU(0.1): halves the map (attribute encoder and HEAR-Net)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))


class UpSkip(nn.Module):
    """ConvTranspose4×4 stride 2 → BN → LeakyReLU(0.1), then concatenation with the encoder skip."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1)
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return torch.cat((self.block(x), skip), dim=1)


def _upsample2(x: Tensor) -> Tensor:
    """Bilinear ×2 (align_corners as the public code); fvcore charges 4 per output element."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def _skip_unet(in_channels: int, widths: Sequence[int]) -> tuple[nn.ModuleList, nn.ModuleList, int]:
    """The U-Net both FaceShifter networks use: 4×4 stride-2 downs, transposed-conv ups with skips.

    Returns (downs, ups, channels of the last decoder level); the caller stores them as ``downs``
    and ``ups``, the module names of the public re-implementation.
    """
    downs = nn.ModuleList(
        _down4x4(cin, cout) for cin, cout in zip([in_channels, *widths[:-1]], widths, strict=True)
    )
    ups: list[UpSkip] = []
    cin = widths[-1]
    for skip in reversed(widths[:-1]):
        ups.append(UpSkip(cin, skip))
        cin = 2 * skip
    return downs, nn.ModuleList(ups), cin


def _skip_unet_levels(downs: nn.ModuleList, ups: nn.ModuleList, x: Tensor) -> list[Tensor]:
    """The bottleneck, then every decoder level (each already concatenated with its skip)."""
    skips = []
    for down in downs:
        x = down(x)
        skips.append(x)
    levels = [x]
    for up, skip in zip(ups, reversed(skips[:-1]), strict=True):
        x = up(x, skip)
        levels.append(x)
    return levels


class AttributeEncoder(nn.Module):
    """The multi-level attribute encoder: 7 downs (256 → 2), 6 ups with skips, z_att^8 by ×2 resize.

    ``base`` is the first width (32); widths double up to 32·base and the innermost level repeats it.
    """

    def __init__(self, base: int = 32, levels: int = 7) -> None:
        super().__init__()
        widths = [min(base * 2**i, base * 2 ** (levels - 2)) for i in range(levels)]
        self.downs, self.ups, _ = _skip_unet(3, widths)
        #: channels of z_att^1..8, which fix the AAD generator's attribute inputs
        self.att_channels = (widths[-1], *(2 * w for w in reversed(widths[:-1])), 2 * widths[0])

    def forward(self, x: Tensor) -> list[Tensor]:
        z_att = _skip_unet_levels(self.downs, self.ups, x)
        z_att.append(_upsample2(z_att[-1]))
        return z_att


# --- AEI-Net: AAD generator ----------------------------------------------------------------------


class AADLayer(nn.Module):
    """The static part of an AAD layer: norm, attribute modulation and the mask.

    ``out = (1 − M)·(γ_att·h̄ + β_att) + M·(γ_id·h̄ + β_id)`` with ``M = σ(conv1×1(h̄))``. γ_id/β_id
    are inputs, not computed here: they depend on the source only, so the identity stage produces
    them (:class:`IdentityProjection`) and video mode injects them.
    """

    def __init__(self, channels: int, att_channels: int, att_kernel: int = 3) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.att_gamma = nn.Conv2d(att_channels, channels, att_kernel, 1, att_kernel // 2)
        self.att_beta = nn.Conv2d(att_channels, channels, att_kernel, 1, att_kernel // 2)
        self.mask = nn.Conv2d(channels, 1, 1)

    def forward(self, h: Tensor, z_att: Tensor, gamma_id: Tensor, beta_id: Tensor) -> Tensor:
        h = self.norm(h)
        attribute = self.att_gamma(z_att) * h + self.att_beta(z_att)
        identity = gamma_id * h + beta_id
        mask = torch.sigmoid(self.mask(h))
        return (1 - mask) * attribute + mask * identity


class IdentityProjection(nn.Module):
    """γ_id and β_id of one AAD layer: two linears on z_id, shaped ``(B, C, 1, 1)``."""

    def __init__(self, id_dim: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(id_dim, channels)
        self.beta = nn.Linear(id_dim, channels)

    def forward(self, z_id: Tensor) -> tuple[Tensor, Tensor]:
        shape = (z_id.shape[0], -1, 1, 1)
        return self.gamma(z_id).view(shape), self.beta(z_id).view(shape)


class AADResBlock(nn.Module):
    """AAD → ReLU → conv3×3 (cin→cin) → AAD → ReLU → conv3×3 (cin→cout), plus a shortcut that is the
    input when widths agree and AAD → ReLU → conv3×3 (cin→cout) otherwise."""

    def __init__(self, cin: int, cout: int, att_channels: int, att_kernel: int = 3) -> None:
        super().__init__()
        n_layers = 2 if cin == cout else 3
        self.aad = nn.ModuleList(AADLayer(cin, att_channels, att_kernel) for _ in range(n_layers))
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.conv_shortcut = nn.Conv2d(cin, cout, 3, 1, 1, bias=False) if cin != cout else None
        self.relu = nn.ReLU()
        self.in_channels = cin

    def forward(self, h: Tensor, z_att: Tensor, id_terms: Sequence[Tensor]) -> Tensor:
        """``id_terms`` is (γ, β) per AAD layer, flattened, in ``self.aad`` order."""
        x = self.conv1(self.relu(self.aad[0](h, z_att, id_terms[0], id_terms[1])))
        x = self.conv2(self.relu(self.aad[1](x, z_att, id_terms[2], id_terms[3])))
        if self.conv_shortcut is not None:
            h = self.conv_shortcut(self.relu(self.aad[2](h, z_att, id_terms[4], id_terms[5])))
        return x + h


class IdentityHead(nn.Module):
    """Every layer of AEI-Net that sees z_id and nothing else.

    ``z_id_up`` (ConvTranspose k2: z_id as a 1×1 map → width@2²) is the generator's starting map;
    ``projections`` holds γ_id/β_id for each AAD layer in execution order. Its output is the identity
    of a FaceShifter swap: ``(start_map, γ_1, β_1, γ_2, β_2, …)``.
    """

    def __init__(self, id_dim: int, start_channels: int, layer_channels: Sequence[int]) -> None:
        super().__init__()
        self.z_id_up = nn.ConvTranspose2d(id_dim, start_channels, 2, 1, 0)
        self.projections = nn.ModuleList(IdentityProjection(id_dim, c) for c in layer_channels)

    def forward(self, z_id: Tensor) -> Identity:
        terms: list[Tensor] = [self.z_id_up(z_id.view(z_id.shape[0], -1, 1, 1))]
        for projection in self.projections:
            terms.extend(projection(z_id))
        return tuple(terms)


def run_aad_blocks(blocks: nn.ModuleList, z_att: Sequence[Tensor], identity: Sequence[Tensor]) -> Tensor:
    """The AAD generator body from an identity tuple: shared verbatim by the image and video paths.

    Block ``k`` consumes z_att^k and is followed by a bilinear ×2, except the last; tanh at the end.
    """
    x = identity[0]
    offset = 1
    for index, block in enumerate(blocks):
        n_terms = 2 * len(block.aad)
        x = block(x, z_att[index], identity[offset : offset + n_terms])
        offset += n_terms
        if index < len(blocks) - 1:
            x = _upsample2(x)
    return torch.tanh(x)


class AADGenerator(nn.Module):
    """The AAD generator: z_id → ConvTranspose to 32·base@2², then 8 AAD-ResBlks up to 3@256².

    Block widths h_in→h_out with ``base=32``: 1024→1024 (×3), 1024→512, 512→256, 256→128, 128→64, 64→3.
    """

    def __init__(self, att_channels: Sequence[int], base: int = 32, id_dim: int = ID_DIM,
                 att_kernel: int = 3) -> None:
        super().__init__()
        top = 32 * base
        widths = [top, top, top, top, top // 2, top // 4, top // 8, top // 16, 3]
        self.blocks = nn.ModuleList(
            AADResBlock(cin, cout, att, att_kernel)
            for cin, cout, att in zip(widths[:-1], widths[1:], att_channels, strict=True)
        )
        layer_channels = [block.in_channels for block in self.blocks for _ in block.aad]
        self.identity_head = IdentityHead(id_dim, top, layer_channels)

    def forward(self, z_att: Sequence[Tensor], z_id: Tensor) -> Tensor:
        return run_aad_blocks(self.blocks, z_att, self.identity_head(z_id))


class AEINet(nn.Module):
    """Adaptive Embedding Integration Network: ``forward(target, z_id)`` → swapped face in [−1, 1]."""

    def __init__(self, base: int = 32, id_dim: int = ID_DIM, att_kernel: int = 3) -> None:
        super().__init__()
        self.encoder = AttributeEncoder(base)
        self.generator = AADGenerator(self.encoder.att_channels, base, id_dim, att_kernel)

    def forward(self, target: Tensor, z_id: Tensor) -> Tensor:
        return self.generator(self.encoder(target), z_id)


# --- HEAR-Net ------------------------------------------------------------------------------------


class HEARNet(nn.Module):
    """Heuristic Error Acknowledging Refinement Network: a 5-down / 4-up U-Net on 6 channels.

    ``forward(swapped, error)`` with ``error = X_t − AEI-Net(X_t, X_t)``; output tanh RGB.
    """

    def __init__(self, base: int = 64, levels: int = 5) -> None:
        super().__init__()
        widths = [min(base * 2**i, base * 8) for i in range(levels)]
        self.downs, self.ups, channels = _skip_unet(6, widths)
        self.out_conv = nn.Conv2d(channels, 3, 3, 1, 1)

    def forward(self, swapped: Tensor, error: Tensor) -> Tensor:
        x = _skip_unet_levels(self.downs, self.ups, torch.cat((swapped, error), dim=1))[-1]
        return torch.tanh(self.out_conv(_upsample2(x)))


# --- the swap pipeline and its stages -------------------------------------------------------------


def crop_resize_for_id(target: Tensor) -> Tensor:
    """The target's face window resized to the id network's 112×112 (for the HEAR-Net error pass)."""
    side = int(target.shape[-1])
    margin = round(side * ID_CROP_MARGIN)
    window = target[..., margin : side - margin, margin : side - margin]
    return F.interpolate(window, size=(ID_INPUT, ID_INPUT), mode="bilinear", align_corners=True)


class SelfIdentity(nn.Module):
    """X_t → its own AEI identity tuple: crop/resize → IR-SE-50 → L2 → identity head (HEAR error pass)."""

    def __init__(self, id_net: IRSEBackbone, identity_head: IdentityHead) -> None:
        super().__init__()
        self.id_net = id_net
        self.identity_head = identity_head

    def forward(self, target: Tensor) -> Identity:
        return self.identity_head(l2_normalize(self.id_net(crop_resize_for_id(target))))


class FaceShifterIdentityStage(nn.Module):
    """Once per source: IR-SE-50 → L2-normalised z_id → the identity head of AEI-Net."""

    def __init__(self, id_net: IRSEBackbone, identity_head: IdentityHead) -> None:
        super().__init__()
        self.id_net = id_net
        self.identity_head = identity_head

    def forward(self, source: Tensor) -> Identity:
        return self.identity_head(l2_normalize(self.id_net(source)))


class FaceShifterFrameStage(nn.Module):
    """Once per frame: attribute encoder + AAD blocks with the source identity injected (+ HEAR-Net).

    Static modules are the model's own objects; the identity tuple becomes frozen, identity-derived
    parameters. With HEAR-Net the stage also holds :class:`SelfIdentity`, because the heuristic error
    needs the target's own identity on every frame.
    """

    def __init__(self, model: FaceShifter, identity: Identity) -> None:
        super().__init__()
        expected = 1 + len(model.aei.generator.identity_head.projections) * 2
        if len(identity) != expected:
            raise BadInputError(
                f"FaceShifter's frame stage needs {expected} identity tensors, got {len(identity)}; "
                "build it from the output of the same model's identity_stage()"
            )
        self.encoder = model.aei.encoder
        self.blocks = model.aei.generator.blocks
        self.identity = nn.ParameterList(mark_identity_derived(frozen(t)) for t in identity)
        self.self_identity = model.self_identity() if model.hear is not None else None
        self.hear = model.hear

    def forward(self, target: Tensor) -> Tensor:
        z_att = self.encoder(target)
        swapped = run_aad_blocks(self.blocks, z_att, tuple(self.identity))
        if self.hear is None or self.self_identity is None:
            return swapped
        reconstructed = run_aad_blocks(self.blocks, z_att, self.self_identity(target))
        return self.hear(swapped, target - reconstructed)


class FaceShifter(SwapNet):
    """IR-SE-50 + AEI-Net (+ HEAR-Net when ``with_hear``); images in [−1, 1].

    ``forward(source, target)`` is the image-mode path written without stages (embed, then the full
    networks), the reference the staged path must equal.
    """

    def __init__(self, with_hear: bool = True, base: int = 32, id_net: IRSEBackbone | None = None,
                 hear_base: int = 64) -> None:
        super().__init__()
        self.id_net = id_net if id_net is not None else IRSEBackbone()
        self.aei = AEINet(base)
        self.hear = HEARNet(hear_base) if with_hear else None

    def embed(self, face112: Tensor) -> Tensor:
        """L2-normalised z_id of a 112×112 face."""
        return l2_normalize(self.id_net(face112))

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        swapped = self.aei(target, self.embed(source))
        if self.hear is None:
            return swapped
        reconstructed = self.aei(target, self.embed(crop_resize_for_id(target)))
        return self.hear(swapped, target - reconstructed)

    def self_identity(self) -> SelfIdentity:
        return SelfIdentity(self.id_net, self.aei.generator.identity_head)

    def identity_stage(self) -> FaceShifterIdentityStage:
        return FaceShifterIdentityStage(self.id_net, self.aei.generator.identity_head).train(self.training)

    def frame_stage(self, identity: Identity | None) -> FaceShifterFrameStage:
        if identity is None:
            raise BadInputError("FaceShifter's frame stage needs its identity stage's output; run it first")
        return FaceShifterFrameStage(self, identity).train(self.training)
