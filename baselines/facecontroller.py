"""FaceController (Xu et al., AAAI 2021): the "FaceController" row of Table 1, cited only.

Nothing of this row can be measured, because nothing of the network is public: there is no code,
no weights and no layer-level description. The paper (from the same Baidu group as MobileFaceSwap)
describes a feed-forward 224 generator driven by 3DMM priors (identity, expression, pose,
illumination) and region-wise style codes from face parsing, all injected through an
"identity-style normalization" module. That is not enough to rebuild layer widths, so any network
written here would be an invention whose counts prove nothing.

The spec therefore has no builder and no stages: mfsbench lists the row with the paper's figures,
marked as cited, and refuses to count, export or time it. One observation, which cannot be checked:
the 70M image−video parameter gap equals an IR-SE-50 ArcFace with a 51,332-class head (70.08M).
"""

from __future__ import annotations

from mfsbench.registry import ModelSpec, PaperReference, SizeRule, register_model


@register_model
def facecontroller_224() -> ModelSpec:
    return ModelSpec(
        name="facecontroller_224",
        display_name="FaceController",
        family="facecontroller",
        provenance="cited",
        native_size=224,
        size_rule=SizeRule(fixed=(224,)),
        stages=(),
        builder=None,
        description="FaceController (AAAI 2021): no public code or weights; the paper's figures are "
        "cited, not measured",
        reference=PaperReference(
            row="FaceController",
            size=224,
            image_params_m=306,
            image_gflops=192,
            video_params_m=236,
            video_gflops=177,
            id_retrieval=98.27,
            pose_error=2.65,
            cited_only=True,
        ),
        notes=(
            "Cited only: no architecture is public, so params and FLOPs are the paper's and cannot be "
            "recomputed.",
        ),
        capabilities=frozenset(),
    )
