"""Evaluation networks of the paper's protocol: Hopenet (pose error), CosFace (ID retrieval) and
pytorch-fid's InceptionV3 (FID).

Both are written in plain PyTorch with the module names of their official checkpoints
(``hopenet_robust_alpha1.pkl``, CosFace ``ACC99.28.pth``), so the released weights load by key
through :mod:`mfsbench.checkpoints.formats`. torchvision is not used anywhere in mfsbench.
"""

from __future__ import annotations

from mfsbench.evalnets.cosface import SphereFace20
from mfsbench.evalnets.hopenet import Hopenet, decode_degrees
from mfsbench.evalnets.inception import FIDInceptionV3, load_fid_inception

__all__ = ["FIDInceptionV3", "Hopenet", "SphereFace20", "decode_degrees", "load_fid_inception"]
