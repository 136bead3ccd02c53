"""Named five-point alignment templates a card may use, in crop units (0..1 of the crop side).

Why names are not enough on their own: FaceFusion and ReActor load the same weights with different
templates (``specs/plugin_models.md`` §1), so a card may instead pin the points. The named ones are
derived from the suite's own pixel templates (:mod:`mfsbench.faces.align`) so that there is one
source for each set of points.
"""

from __future__ import annotations

import numpy as np

from mfsbench.faces.align import ARCFACE_TEMPLATE_112, SIMSWAP_TEMPLATES_112

#: name → (5, 2) points in crop units.
TEMPLATES: dict[str, np.ndarray] = {
    # InsightFace's 112 px ArcFace template (FaceFusion ``arcface_112_v2``).
    "arcface_112_v2": ARCFACE_TEMPLATE_112 / 112.0,
    # The same points shifted +8 px in x for 128 px crops (``norm_crop2``; FaceFusion ``arcface_128``).
    "arcface_128": (ARCFACE_TEMPLATE_112 + np.array([8.0, 0.0])) / 128.0,
    # InsightFace's legacy frontal points, SimSwap's frontal template (FaceFusion ``arcface_112_v1``).
    "arcface_112_v1": SIMSWAP_TEMPLATES_112[2] / 112.0,
}


def template_points(template: str | tuple[tuple[float, float], ...], size: int) -> np.ndarray:
    """The template's (5, 2) points in pixels of a ``size`` crop."""
    units = TEMPLATES[template] if isinstance(template, str) else np.asarray(template, dtype=np.float64)
    return units * float(size)
