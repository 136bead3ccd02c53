"""MobileFaceSwap's training objective, Eq. 3–7, with each term switchable.

    L = λ_adv·L_adv + α·(λ_rec·L_rec + λ_per·L_per) + λ_id·L_id + λ_mask·L_mask        (Eq. 7)

* L_rec = ‖I'g − Ig‖₁ and L_per = Σ_i (1/N_i)‖F_i(I'g) − F_i(Ig)‖² (VGG-16), student Ig vs teacher
  I'g (Eq. 3), per sample, so that α weights each sample;
* α = max(cos(z_src, z'), 0)² × Q(I'g) with z' = F_id(I'g) (Eq. 4; Q, the frozen quality regressor of
  :mod:`mfsbench.distill.quality`, only with ``[reweight] quality = "regressor"``, else 1), computed
  under ``no_grad``: it depends on the teacher output and the source only, never on the student;
* L_id = 1 − cos(F_id(I_s), F_id(Ig)) (Eq. 5); the frozen ArcFace passes gradients to Ig only;
* L_mask = mean |M_g| over background pixels (Eq. 6: only M_t[bg] = 0 is constrained; background from
  the BiSeNet parse of the target with ``mask_source = "parser"``, else a fixed ellipse). The mask head
  reads the detached bottleneck, so this trains the mask head and nothing else;
* L_adv = −E[D(Ig)] (hinge), D trained separately (:mod:`mfsbench.distill.discriminator`).

Beyond the paper, opt-in (:mod:`mfsbench.distill.extras`): ``lambda_ssim`` and ``lambda_style`` add
OMGD's (1 − SSIM) and Gram style terms inside α's KD sum; ``lambda_feature`` adds CAT's kernel-alignment
loss between the student's decoder maps and the teacher's layers; ``kd_region = "face"`` restricts
L_rec, L_per and SSIM to the face (outside the background mask).

A term whose weight is 0 (or whose switch is off) is **not computed**: its networks do not run and its
key is absent from the returned terms, which is what the switch tests check. With ``kd = false``
(Table 2's "w/o KD", which the paper does not define) L_rec/L_per compare the student with the
*target* on same-identity rows only: our reconstruction of a SimSwap-style objective.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfsbench.distill.discriminator import g_hinge_loss
from mfsbench.distill.extras import (
    capture_outputs,
    feature_ka_loss,
    find_layers,
    masked_l1,
    ssim_per_sample,
    style_per_sample,
)
from mfsbench.distill.student import student_forward
from mfsbench.distill.vgg import perceptual_per_sample
from mfsbench.models.arcface import imagenet_normalize, resize_for_id
from mfsbench.models.mobilefaceswap import MobileFaceSwap

Section = Callable[[str], AbstractContextManager[Any]]


@dataclass
class Batch:
    """One step's inputs. Images are RGB in [0, 1]; ``background`` is 1 outside the face."""

    source: Tensor
    target: Tensor
    background: Tensor
    same: Tensor
    pair_ids: Tensor | None = None


@dataclass
class Parts:
    """The networks one step runs. ``id_net`` is F_id (the student's frozen Id network, possibly wrapped
    for autocast); ``student_fn`` is :func:`student_forward` or its compiled form."""

    student: MobileFaceSwap
    teacher: nn.Module
    id_net: nn.Module
    vgg: nn.Module | None
    disc: nn.Module | None
    student_fn: Callable[..., tuple[Tensor, Tensor]] = student_forward
    #: the frozen quality regressor Q (``[reweight] quality = "regressor"``), output in [0, 1], no grad
    quality: nn.Module | None = None


@dataclass
class TeacherView:
    """What a step computes from the (source, target) pair and the frozen networks alone, without
    gradient: the same every time a fixed pair comes back, hence what ``[perf] cache_teacher`` keeps
    (:mod:`mfsbench.distill.pair_cache`)."""

    output: Tensor | None
    alpha: Tensor
    features: list[Tensor] | None = None  # the teacher's ``feature_teacher_layers`` maps (lambda_feature)
    #: F_id's ``(embedding, 512×7×7 map)`` of the sources: z_src of α and L_id, and the student's identity
    id_features: tuple[Tensor, Tensor] | None = None
    #: the VGG maps of the KD reference (the teacher output; the target with ``kd = false``): L_per's and
    #: L_style's target side
    ref_features: list[Tensor] | None = None


def id_input(rgb01: Tensor) -> Tensor:
    """An aligned crop → ArcFace's 112×112 ImageNet-normalised input (bilinear, differentiable)."""
    return imagenet_normalize(resize_for_id(rgb01, 112))


def run_teacher(teacher: nn.Module, source: Tensor, target: Tensor) -> Tensor:
    """The teacher's swap (RGB [0, 1], fp32) of a batch of source and target crops. A torch teacher takes
    ArcFace's 112 input of the source; a card teacher (``takes_source_crop``) the source crop itself,
    since it makes its encoder's own crop from it (:mod:`mfsbench.distill.card_teacher`)."""
    out = teacher(source if getattr(teacher, "takes_source_crop", False) else id_input(source), target)
    return (out[0] if isinstance(out, tuple) else out).float()


def cosine(a: Tensor, b: Tensor) -> Tensor:
    return F.cosine_similarity(a.float(), b.float(), dim=1)


def identity_alpha(cos: Tensor, clamp_negative: bool = True) -> Tensor:
    """Eq. 4's identity factor: the squared cosine similarity, clamped at 0 first (no gradient)."""
    cos = cos.detach()
    return (cos.clamp(min=0) if clamp_negative else cos).pow(2)


def _null_section(name: str) -> AbstractContextManager[Any]:
    from contextlib import nullcontext

    return nullcontext()


def teacher_view(config: dict[str, Any], parts: Parts, batch: Batch, z_src: Tensor,
                 section: Section = _null_section) -> TeacherView:
    """Teacher output (if KD needs it) and α, all without gradient."""
    loss, rw = config["loss"], config["reweight"]
    ones = batch.target.new_ones(batch.target.shape[0])
    # α weights only the KD terms: without them neither the teacher nor α's ArcFace pass runs
    if not (loss["kd"] and (loss["lambda_rec"] > 0 or loss["lambda_per"] > 0)):
        return TeacherView(None, ones)
    layers = find_layers(parts.teacher, loss["feature_teacher_layers"]) if loss["lambda_feature"] > 0 else []
    with torch.no_grad():
        with section("teacher"), capture_outputs(layers) as features:
            out = run_teacher(parts.teacher, batch.source, batch.target)
        alpha = ones
        if rw["identity"]:
            with section("identity"):
                z_t, _ = parts.id_net(id_input(out))
            alpha = identity_alpha(cosine(z_src, z_t), rw["clamp_negative"])
        if rw["quality"] == "regressor":
            if parts.quality is None:
                raise ValueError("[reweight] quality = \"regressor\" needs Parts.quality (the regressor)")
            with section("quality"):
                alpha = alpha * parts.quality(out).detach().float().clamp(0.0, 1.0)
    return TeacherView(out, alpha, features if layers else None)


def uses_perceptual(loss: dict[str, Any]) -> bool:
    """Whether a term reads VGG maps (L_per, or the beyond-paper style loss)."""
    return loss["lambda_per"] > 0 or loss["lambda_style"] > 0


def reference_features(config: dict[str, Any], parts: Parts, batch: Batch, view: TeacherView,
                       section: Section = _null_section) -> list[Tensor] | None:
    """VGG maps of the KD reference (no gradient), or None when no term reads them."""
    loss = config["loss"]
    reference = view.output if loss["kd"] else batch.target
    if not uses_perceptual(loss) or reference is None:
        return None
    if parts.vgg is None:
        raise ValueError("lambda_per or lambda_style > 0 needs the VGG network")
    with torch.no_grad(), section("perceptual"):
        return list(parts.vgg(reference))


def pair_view(config: dict[str, Any], parts: Parts, batch: Batch,
              section: Section = _null_section) -> TeacherView:
    """Everything of a step that depends on the pair and the frozen networks only: F_id of the sources,
    the teacher output (and its inner maps for ``lambda_feature``), α, and the reference's VGG maps.
    The uncached step computes exactly this (so the cache holds what the step would compute)."""
    with torch.no_grad(), section("identity"):
        id_features = parts.id_net(id_input(batch.source))
    view = teacher_view(config, parts, batch, id_features[0], section)
    view.id_features = (id_features[0], id_features[1])
    view.ref_features = reference_features(config, parts, batch, view, section)
    return view


def objective(config: dict[str, Any], parts: Parts, batch: Batch, cached: TeacherView | None = None,
              section: Section = _null_section) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """The student's loss for one batch: ``(total, terms, extras)``.

    ``terms`` holds each computed, *unweighted* term (mean over the batch); ``extras`` holds α and the
    student's output and mask (for the D step and the records).
    """
    loss = config["loss"]
    id_net, vgg, disc = parts.id_net, parts.vgg, parts.disc
    view = cached if cached is not None else pair_view(config, parts, batch, section)
    if view.id_features is None:
        with torch.no_grad(), section("identity"):
            view.id_features = id_net(id_input(batch.source))
    id_features = view.id_features
    z_src = id_features[0]
    if view.ref_features is None:
        view.ref_features = reference_features(config, parts, batch, view, section)
    taps: list[Tensor] | None = [] if loss["lambda_feature"] > 0 else None
    with section("student_forward"):
        # the student's identity comes from id_features (F_id is its frozen Id network): no source pass
        if taps is None:
            out, mask = parts.student_fn(parts.student, None, batch.target, id_features)
        else:
            out, mask = parts.student_fn(parts.student, None, batch.target, id_features, taps=taps)
    terms: dict[str, Tensor] = {}
    total = out.new_zeros(())
    alpha = view.alpha
    if loss["kd"]:
        reference, weight = view.output, alpha
    else:
        reference, weight = batch.target, batch.same.float()
    kd_sum = _kd_terms(loss, vgg, out, reference, view.ref_features, face=1 - batch.background, terms=terms,
                       section=section)
    if terms:
        denominator = weight.sum().clamp(min=1) if not loss["kd"] else weight.new_tensor(weight.numel())
        total = total + (weight * kd_sum).sum() / denominator
    if taps is not None:
        if view.features is None:
            raise ValueError("lambda_feature > 0 needs the teacher's feature maps (TeacherView.features)")
        with section("perceptual"):
            terms["feature"] = feature_ka_loss(taps, view.features)
        total = total + loss["lambda_feature"] * terms["feature"]
    if loss["lambda_id"] > 0:
        with section("identity"):
            z_out, _ = id_net(id_input(out))
        terms["id"] = (1 - cosine(z_src, z_out)).mean()
        total = total + loss["lambda_id"] * terms["id"]
    if loss["lambda_mask"] > 0:
        background = batch.background
        terms["mask"] = (mask * background).sum() / background.sum().clamp(min=1)
        total = total + loss["lambda_mask"] * terms["mask"]
    if loss["lambda_adv"] > 0 and disc is not None:
        with section("discriminator"):
            terms["adv"] = g_hinge_loss(disc, out)
        total = total + loss["lambda_adv"] * terms["adv"]
    return total, terms, {"alpha": alpha, "output": out, "mask": mask}


def _kd_terms(loss: dict[str, Any], vgg: nn.Module | None, out: Tensor, reference: Tensor,
              ref_features: list[Tensor] | None, *, face: Tensor, terms: dict[str, Tensor],
              section: Section) -> Tensor:
    """The per-sample sum Σ λ·term of the output terms α weights: L_rec and L_per (Eq. 3), and beyond
    the paper SSIM and style; each computed term's batch mean goes into ``terms``. ``ref_features``:
    the reference's VGG maps (:func:`reference_features`, possibly cached)."""
    region = face if loss["kd_region"] == "face" else None
    kd_sum = out.new_zeros(out.shape[0])
    if loss["lambda_rec"] > 0:
        rec = masked_l1(out, reference, region)
        terms["rec"] = rec.mean()
        kd_sum = kd_sum + loss["lambda_rec"] * rec
    if loss["lambda_ssim"] > 0:
        dissimilarity = 1 - ssim_per_sample(out, reference, region)
        terms["ssim"] = dissimilarity.mean()
        kd_sum = kd_sum + loss["lambda_ssim"] * dissimilarity
    if uses_perceptual(loss):
        if vgg is None or ref_features is None:
            raise ValueError("lambda_per or lambda_style > 0 needs the VGG network")
        with section("perceptual"):
            out_features = vgg(out)
            if loss["lambda_per"] > 0:
                per = perceptual_per_sample(out_features, ref_features, region)
                terms["per"] = per.mean()
                kd_sum = kd_sum + loss["lambda_per"] * per
            if loss["lambda_style"] > 0:
                style = style_per_sample(out_features, ref_features)
                terms["style"] = style.mean()
                kd_sum = kd_sum + loss["lambda_style"] * style
    return kd_sum
