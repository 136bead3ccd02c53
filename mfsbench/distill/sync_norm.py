r"""Batch norm over the global batch of a multi-process run, on CPU too (gloo).

Why: under ``torchrun`` each rank holds its rows of the global batch. A plain ``BatchNorm2d`` would
normalise each rank's rows with that rank's statistics, so a 2-rank step would not be the 1-process
step of the same batch (and its running statistics would differ). ``torch.nn.SyncBatchNorm`` fixes
that on GPUs only: its forward refuses CPU tensors. This module does the same with differentiable
``all_reduce``\ s of (Σx, n), then of Σ(x − μ)², per layer, which gloo runs on CPU. Their backward is an
``all_reduce`` of the gradients, so each rank's input receives the statistics' gradient of every
rank's loss — the single-process gradient once the trainer averages the ranks' gradients.

Outside a multi-process run (or in ``eval()``) it is exactly ``nn.BatchNorm2d``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics cover every rank's rows."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or _world() == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        channels = x.shape[1]
        count = x.new_tensor([x.numel() / channels])
        # two passes (Σx, then Σ(x − μ)²), as BatchNorm itself computes: E[x²] − μ² loses digits
        packed = all_reduce(torch.cat([x.sum((0, 2, 3)), count]))
        total = packed[-1]
        mean = packed[:channels] / total
        centred = x - mean.view(1, channels, 1, 1)
        var = all_reduce((centred * centred).sum((0, 2, 3))) / total
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
                momentum = (self.momentum if self.momentum is not None  # None: a cumulative average
                            else 1.0 / float(self.num_batches_tracked or 1))
                unbiased = var * total / (total - 1).clamp(min=1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.detach())
        shape = (1, channels, 1, 1)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def globalize_batchnorm(module: nn.Module) -> int:
    """Turn every ``BatchNorm2d`` under ``module`` into :class:`GlobalBatchNorm2d` in place (same
    parameters and buffers, same state-dict keys); returns how many were turned."""
    turned = 0
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            glob = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats)
            glob.load_state_dict(child.state_dict())
            glob.train(child.training)
            setattr(module, name, glob)
            turned += 1
        else:
            turned += globalize_batchnorm(child)
    return turned
