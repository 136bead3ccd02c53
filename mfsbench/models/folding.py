"""Fold each eval-mode ``BatchNorm2d`` into the ``Conv2d`` just before it, for inference in torch.

Why: a frozen batch norm is an affine map per channel, so ``bn(conv(x))`` is one convolution with
scaled weights and a shifted bias. The swap command's torch runtime runs the frame stage once per
frame; folding removes a full pass over each normalised feature map (the student's ``final`` head
and fusion mask have seven, two of them at 224×224). Exported graphs do not need this: ONNX Runtime,
OpenVINO and LiteRT fold batch norms themselves.

Only ``Conv2d → BatchNorm2d`` pairs that are consecutive children of an ``nn.Sequential`` are folded,
where the order of execution is the order of the children; anything else is left as written.
"""

from __future__ import annotations

import copy
import itertools

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(module: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``module`` (in eval mode) with every ``Conv2d → BatchNorm2d`` pair of a ``Sequential``
    folded into one ``Conv2d`` (the batch norm's slot becomes ``Identity``, so child indices stay);
    returns the copy and the number of batch norms folded. ``module`` itself is not changed."""
    folded = copy.deepcopy(module).eval()
    count = 0
    for sequential in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(sequential._modules)
        for first, second in itertools.pairwise(names):
            conv, norm = sequential._modules[first], sequential._modules[second]
            if (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
                    and norm.track_running_stats and norm.running_mean is not None):
                sequential._modules[first] = fuse_conv_bn_eval(conv, norm)
                sequential._modules[second] = nn.Identity()
                count += 1
    return folded, count
