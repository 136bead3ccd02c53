"""How each model family consumes aligned crops and what its output means.

The networks differ in exactly four places that matter for a correct swap: which alignment template
they were trained on, how the source crop becomes the 112×112 id-network input, how the target crop
is scaled, and whether the output carries a blend mask. Those facts (from the official inference
scripts, ``specs/mobilefaceswap.md`` §4 and ``specs/simswap_arcface_deepfakes.md`` §4) live here, one
adapter per family, so the pipeline itself is model-agnostic.

torch is imported inside the conversions only: looking an adapter up (which `mfsbench quality` does
for every model before it knows whether anything is left to compute) must stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.align import cv2_module
from mfsbench.registry import ModelSpec

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class SwapAdapter:
    """Pre- and post-processing of one family.

    ``align`` names the template fit (see :mod:`mfsbench.faces.align`); the source is always aligned
    at ``source_size`` (both official scripts align the source at 224 whatever the target size) and
    resized to 112 with ``id_resize``.
    """

    family: str
    align: Literal["arcface", "simswap"]
    source_size: int
    id_resize: Literal["linear", "nearest"]
    has_mask: bool

    def source_tensor(self, crop_bgr: np.ndarray) -> Tensor:
        """Aligned source crop → 1×3×112×112 ImageNet-normalised RGB, as the id network expects."""
        import torch.nn.functional as F

        from mfsbench.models.arcface import imagenet_normalize

        if self.id_resize == "linear":  # MobileFaceSwap: cv2.resize(INTER_LINEAR) before normalising
            cv2 = cv2_module()
            resized = cv2.resize(crop_bgr, (112, 112), interpolation=cv2.INTER_LINEAR)
            return imagenet_normalize(_to_rgb01(resized))
        # SimSwap: normalise the 224 crop, then F.interpolate's default (nearest) to 112
        return F.interpolate(imagenet_normalize(_to_rgb01(crop_bgr)), size=(112, 112), mode="nearest")

    def frame_tensor(self, crop_bgr: np.ndarray) -> Tensor:
        """Aligned target crop → 1×3×S×S RGB in [0, 1] (both families scale by 1/255 only)."""
        return _to_rgb01(crop_bgr)

    def output(self, result: Tensor | tuple[Tensor, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Network output → (BGR uint8 crop, float mask in [0, 1] of the crop's size)."""
        image = result[0] if isinstance(result, tuple) else result
        crop = _to_bgr_uint8(image)
        if self.has_mask and isinstance(result, tuple) and len(result) > 1:
            mask = result[1][0, 0].clamp(0, 1).numpy().astype(np.float32)
        else:
            mask = np.ones(crop.shape[:2], np.float32)
        return crop, mask


def _to_rgb01(crop_bgr: np.ndarray) -> Tensor:
    import torch

    rgb = np.ascontiguousarray(crop_bgr[:, :, ::-1], dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)


def _to_bgr_uint8(image: Tensor) -> np.ndarray:
    # paddle2cv multiplies by 255 without clipping; clipping is deferred to paste-back, but a uint8
    # crop needs it here.
    array = image[0].permute(1, 2, 0).clamp(0, 1).mul(255).round().byte().numpy()
    return np.ascontiguousarray(array[:, :, ::-1])


ADAPTERS: dict[str, SwapAdapter] = {
    "mobilefaceswap": SwapAdapter("mobilefaceswap", "arcface", 224, "linear", has_mask=True),
    "mobilefaceswap-ablation": SwapAdapter("mobilefaceswap-ablation", "arcface", 224, "linear", True),
    "simswap": SwapAdapter("simswap", "simswap", 224, "nearest", has_mask=False),
    "test": SwapAdapter("test", "arcface", 224, "linear", has_mask=True),
}


def adapter_for(spec: ModelSpec) -> SwapAdapter:
    """The adapter of a spec's family.

    A model card (``spec.card``) is swappable whatever its family: its card says how it runs.

    Raises:
        BadInputError: for a model that has no face-swap pipeline (and says which ones do).
    """
    if spec.card is not None:
        # a card runs through :class:`~mfsbench.swap.runners.OnnxCardRunner`, which applies the card's own
        # template, pixels and paste-back; this adapter describes only the suite ArcFace's source crop
        # (its identity encoder when the card names no encoder file)
        return SwapAdapter(spec.family, "arcface", 224, "linear", has_mask=False)
    adapter = ADAPTERS.get(spec.family)
    if adapter is None or "identity" not in spec.stage_names or "frame" not in spec.stage_names:
        swappable = ", ".join(sorted(k for k in ADAPTERS if k != "test"))
        raise BadInputError(
            f"{spec.name} cannot run `mfsbench swap`: only identity + frame networks of the families "
            f"{swappable} have a swap pipeline"
        )
    return adapter
