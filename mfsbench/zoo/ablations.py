"""The five architecture ablations of the paper's Table 2, as real runnable networks.

Each is the released 224 student with one design choice removed, built from the same classes
(:func:`~mfsbench.models.mobilefaceswap.student_variant` with
:class:`~mfsbench.models.mobilefaceswap.StudentConfig` switches), so the difference in counts is the
difference in design and nothing else. The paper gives no complexity for them and its Table 2 row
labels were lost in the text, so these specs carry no paper figures; quality reports label rows by
variant name. The designs:

``mfs_no_weight_prediction``
    No ``WeightPrediction``: the 9 depthwise kernels are static learned weights; only the pointwise
    kernels are modulated by the identity. The identity stage shrinks to ArcFace + 9 Mod2Weight.
``mfs_adain``
    Weight modulation replaced by AdaIN: the pointwise kernels are static, and after each of the 9
    pointwise convs a parameter-free instance norm is followed by ``x·(1+γ)+β`` with (γ, β) from a
    linear on the embedding (SimSwap's ``ApplyStyle``). Depthwise kernels are still predicted.
``mfs_no_modulation``
    No Mod2Weight: static pointwise kernels, predicted depthwise kernels, no other identity path.
``mfs_no_fusion``
    No weak semantic fusion mask head: the network's output is the decoded face itself, so the
    background comes from the generator (the paper notes it then differs from the target's).
``mfs_autoencoder``
    An autoencoder instead of the U-Net: no skip concatenations, so each decoder block reads only
    the previous one (decoder dw widths 512, 256, 128, 64), with the same kernel injection.
"""

from __future__ import annotations

from typing import Any

from mfsbench.registry import Builder, ExpectedCounts, ModelSpec, register_model
from mfsbench.zoo.paper import STUDENT_FRAME, STUDENT_IDENTITY, STUDENT_SIZES


def _ablation(name: str, title: str, change: tuple[str, Any], expected: ExpectedCounts | None,
              notes: tuple[str, ...] = ()) -> ModelSpec:
    """The spec of the student with the one :class:`StudentConfig` field ``change`` names set."""
    return ModelSpec(
        name=name,
        display_name=f"Ablation: {title}",
        family="mobilefaceswap-ablation",
        provenance="ablation",
        native_size=224,
        size_rule=STUDENT_SIZES,
        stages=(STUDENT_IDENTITY, STUDENT_FRAME),
        builder=Builder("mfsbench.models.mobilefaceswap:student_variant", (change,)),
        description=f"MobileFaceSwap 224 {title.lower()} (Table 2 network ablation)",
        expected=expected,
        image_params="identity_stage",
        notes=("Image-mode params count the identity stage, as for the full student.", *notes),
    )


@register_model
def mfs_no_weight_prediction() -> ModelSpec:
    return _ablation(
        "mfs_no_weight_prediction",
        "without weight prediction",
        ("predict_depthwise", False),
        # Backed by: derived in tests/test_counts_derived.py (student − WeightPrediction); no paper figure.
        ExpectedCounts(53_554_562, 496_462, 7_524_145_280, 333_243_904),
    )


@register_model
def mfs_adain() -> ModelSpec:
    return _ablation(
        "mfs_adain",
        "AdaIN instead of weight modulation",
        ("pointwise", "adain"),
        # Backed by: derived in tests/test_counts_derived.py (student − Mod2Weight + AdaIN); no paper figure.
        ExpectedCounts(72_957_052, 499_406, 7_743_854_080, 333_243_904),
    )


@register_model
def mfs_no_modulation() -> ModelSpec:
    return _ablation(
        "mfs_no_modulation",
        "without weight modulation",
        ("pointwise", "static"),
        # Backed by: derived in tests/test_counts_derived.py (FLOPs skip the unused fc+BN1d, params keep it).
        ExpectedCounts(71_446_780, 496_462, 7_729_499_136, 333_243_904),
        # The decision, said where the numbers are read: the paper defines image-mode params as
        # "Id network + IIN", the same Id network in every row, so the row keeps ArcFace's whole
        # parameter count; FLOPs count what runs, and nothing here reads the embedding.
        notes=("Params keep ArcFace's embedding head (fc + BatchNorm1d, 12.85 M), as the paper's "
               "'Id network + IIN' definition does for every row, although without weight modulation "
               "nothing reads the embedding: its 12.85 M MACs are not run and not in the FLOPs.",),
    )


@register_model
def mfs_no_fusion() -> ModelSpec:
    return _ablation(
        "mfs_no_fusion",
        "without the fusion mask",
        ("fusion_mask", False),
        # Backed by: derived in tests/test_counts_derived.py (student minus the mask head); no paper figure.
        ExpectedCounts(72_808_127, 412_253, 7_743_314_944, 285_100_032),
    )


@register_model
def mfs_autoencoder() -> ModelSpec:
    return _ablation(
        "mfs_autoencoder",
        "autoencoder instead of U-Net",
        ("skips", False),
        # Backed by: derived in tests/test_counts_derived.py (decoder widths without skips); no paper figure.
        ExpectedCounts(67_925_503, 449_422, 7_701_593_408, 237_909_504),
    )
