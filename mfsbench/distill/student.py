"""A batched, trainable forward of the MobileFaceSwap student, equal to the inference forward.

Why a second forward: the inference path (:class:`~mfsbench.models.mobilefaceswap.InjectedIDN`) is
built for deployment. It takes the identity of *one* source (``_as_depthwise`` keeps ``kernel_map[0]``)
and stores the injected kernels as frozen parameters (``frozen()`` detaches them), so no gradient
can reach the IIN through it. Training needs B different identities per step and gradients through
the injected kernels, so this module runs the *same modules* (no copies: the trainable parameters
are those of ``MobileFaceSwap.swap``) with grouped convolutions:

* a predicted depthwise conv over a batch is one conv with ``groups = B·C`` on the batch folded into
  channels, ``x.view(1, B·C, H, W)`` with the (B·C, 1, k, k) kernels;
* a modulated pointwise conv is one conv with ``groups = B`` on that same folded map, with the
  (B·cout, cin, 1, 1) kernels :class:`~mfsbench.models.mobilefaceswap.Mod2Weight` already produces.

The mask head still reads the *detached* bottleneck (the official graph's ``x.detach()``), so the
weak mask loss trains the mask head only. ``tests/test_distill_student.py`` checks equality with the
inference forward (≤ 1e-6) at B = 1 and, per sample, at B > 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mfsbench.models.arcface import l2_normalize
from mfsbench.models.mobilefaceswap import (
    DEMOD_EPS,
    LEAK,
    InjectionNetwork,
    MobileFaceSwap,
    StudentConfig,
    WeightPrediction,
    instance_norm,
)


@dataclass
class BatchIdentity:
    """Per-sample identity tensors for B sources.

    ``depthwise[i]``: (B, C, k, k) predicted kernels, or None for the static-kernel ablation;
    ``pointwise[i]``: (B·cout, cin, 1, 1) modulated kernels, or None for static ones;
    ``styles[i]``: (B, 2·C) AdaIN (γ, β), only for the AdaIN ablation.
    """

    batch: int
    depthwise: list[Tensor] | None
    pointwise: list[Tensor] | None
    styles: list[Tensor] | None


def predict_depthwise(predictor: WeightPrediction, id_map: Tensor) -> list[Tensor]:
    """:meth:`WeightPrediction.forward` without the batch-1 slice: (B, C, k, k) per block."""
    z = F.leaky_relu(predictor.norm(predictor.first(id_map)), LEAK)
    encoder_kernels = []
    out = z
    for block in predictor.encoder:
        out, kernel = block(out)
        encoder_kernels.append(kernel)
    encoder_kernels.reverse()
    decoder_kernels = []
    out = F.leaky_relu(predictor.decoder_norm(predictor.first_decoder(z)), LEAK)
    for block in predictor.decoder:
        out, kernel = block(out)
        decoder_kernels.append(kernel)
    return encoder_kernels + decoder_kernels


def modulated_pointwise(weight: Tensor, style: torch.nn.Linear, embedding: Tensor) -> Tensor:
    """:meth:`Mod2Weight.forward` for B embeddings: (B·cout, cin, 1, 1), demodulated per sample."""
    s = style(embedding)
    w = weight.unsqueeze(0) * (1 + s)[:, None, :, None, None]
    w = w * torch.rsqrt(w.pow(2).sum(dim=(2, 3, 4), keepdim=True) + DEMOD_EPS)
    return w.reshape(-1, *weight.shape[1:])


def batch_identity(weights: InjectionNetwork, config: StudentConfig, embedding: Tensor,
                   id_map: Tensor) -> BatchIdentity:
    """The IIN for B sources, from the *un-normalised* ArcFace embedding and its 512×7×7 map."""
    embedding = l2_normalize(embedding)
    depthwise = predict_depthwise(weights.predictor, id_map) if config.predict_depthwise else None
    pointwise = None
    if config.pointwise == "modulation":
        mods = [*weights.EncoderModulation, *weights.DecoderModulation]
        pointwise = [modulated_pointwise(m.weight, m.style, embedding) for m in mods]
    styles = [style(embedding) for style in weights.AdaIN] if config.pointwise == "adain" else None
    return BatchIdentity(embedding.shape[0], depthwise, pointwise, styles)


def _separable(x: Tensor, identity: BatchIdentity, weights: InjectionNetwork, index: int,
               stride: int) -> Tensor:
    """One dw → pw block for the whole batch (bias-free, padding 1, as :class:`SeparableBlock`)."""
    b, c, h, w = x.shape
    if identity.depthwise is not None:
        k = identity.depthwise[index]
        y = F.conv2d(x.reshape(1, b * c, h, w), k.reshape(b * c, 1, *k.shape[-2:]),
                     stride=stride, padding=1, groups=b * c)
        x = y.reshape(b, c, *y.shape[-2:])
    else:
        x = F.conv2d(x, weights.static_depthwise[index], stride=stride, padding=1, groups=c)
    if identity.pointwise is not None:
        kernel = identity.pointwise[index]
        cout = kernel.shape[0] // b
        hh, ww = x.shape[-2:]
        return F.conv2d(x.reshape(1, b * c, hh, ww), kernel, groups=b).reshape(b, cout, hh, ww)
    return F.conv2d(x, weights.static_pointwise[index])


def _activate(x: Tensor, identity: BatchIdentity, index: int) -> Tensor:
    if identity.styles is not None:
        gamma, beta = identity.styles[index].reshape(x.shape[0], 2, -1, 1, 1).unbind(1)
        x = instance_norm(x) * (1 + gamma) + beta
    return F.leaky_relu(x, LEAK)


def batch_frame(weights: InjectionNetwork, config: StudentConfig, identity: BatchIdentity,
                target: Tensor, taps: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """:meth:`InjectedIDN.forward` for B (target, identity) pairs: ``(swapped, mask)`` in [0, 1].

    ``taps``, when given, receives each decoder block's output (before its skip concatenation), for
    feature distillation (:func:`mfsbench.distill.extras.feature_ka_loss`).
    """
    if target.shape[0] != identity.batch:
        raise ValueError(f"{target.shape[0]} targets for {identity.batch} identities; pass one each")
    n_enc = len(config.encoder) - 1
    n_dec = len(config.decoder)
    x = (target - 0.5) / 0.5
    features = []
    for index in range(n_enc):
        x = _activate(_separable(x, identity, weights, index, 2), identity, index)
        features.append(x)
    bottleneck = x
    skips = list(reversed(features[1:-1])) if config.skips else []
    for index in range(n_dec):
        up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        x = _activate(_separable(up, identity, weights, n_enc + index, 1), identity, n_enc + index)
        if taps is not None:
            taps.append(x)
        if index < len(skips):
            x = torch.cat([x, skips[index]], dim=1)
    out = (1 + weights.final(x)) / 2
    if not config.fusion_mask:
        return out, torch.ones_like(out[:, :1])
    mask = weights.mask(bottleneck.detach())
    return out * mask + (1 - mask) * target, mask


def student_forward(model: MobileFaceSwap, source_id: Tensor | None, target: Tensor,
                    id_features: tuple[Tensor, Tensor] | None = None,
                    taps: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Image mode for a batch: ``source_id`` (B×3×112×112, ImageNet-normalised) and ``target`` (B×3×S×S).

    ``id_features`` lets the trainer pass ArcFace's ``(embedding, map)`` of the sources when it has
    already computed them for the teacher and the losses (the Id network is frozen, so it is the same);
    ``source_id`` may then be None.
    """
    if id_features is None:
        if source_id is None:
            raise ValueError("student_forward needs source_id or id_features")
        id_features = model.id_net(source_id)
    embedding, id_map = id_features
    identity = batch_identity(model.swap, model.config, embedding, id_map)
    return batch_frame(model.swap, model.config, identity, target, taps)


__all__ = ["BatchIdentity", "batch_frame", "batch_identity", "student_forward"]
