"""The one interface every zoo network implements: two stages that image and video mode compose.

A face-swap network does some work once per *source* identity (run the id network, predict or
modulate weights, compute AdaIN γ/β) and some work once per *target frame*. Papers count the two
differently: "image mode" pays for both per frame, "video mode" pays for the identity once and
amortises it. mfsbench therefore never counts, exports or times "a model"; it counts stages:

* :meth:`SwapNet.identity_stage` returns a module ``forward(*source_inputs) -> Identity`` (a tuple
  of tensors), or ``None`` for networks whose identity is baked into their weights (DeepFakes).
* :meth:`SwapNet.frame_stage` returns a module ``forward(*frame_inputs)`` with that identity
  *injected*: identity-derived kernels and vectors are stored in it as frozen ``nn.Parameter``s,
  exactly as the deployed per-frame network holds them. Static weights are shared, not copied.

The stage modules hold only the submodules they run, so counting a stage's parameters never picks
up a head that the stage does not execute.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

Identity = tuple[Tensor, ...]


class SwapNet(nn.Module, ABC):
    """Base class of every zoo network; subclasses implement the two stage factories."""

    def identity_stage(self) -> nn.Module | None:
        """The once-per-source module, or ``None`` when the network has no identity input."""
        return None

    @abstractmethod
    def frame_stage(self, identity: Identity | None) -> nn.Module:
        """The per-frame module with ``identity`` (the identity stage's output) injected."""


def frozen(tensor: Tensor) -> nn.Parameter:
    """Wrap an identity-derived tensor as a weight of the deployed frame network.

    It is a parameter (not a buffer) because that is what it is after injection: exporters write
    it as an initializer and the video-mode parameter count includes it.
    """
    return nn.Parameter(tensor.detach().clone(), requires_grad=False)
