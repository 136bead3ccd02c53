"""The InceptionV3 of pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``), pool3 features for FID.

FID is only comparable across papers when it is computed with the *TensorFlow* Inception graph of
2015-12-05, which differs from torchvision's ImageNet InceptionV3 in weights (1008 classes) and in
three block types. mseitzer/pytorch-fid ported that graph; this module rebuilds its network without
torchvision, under the same module names, so the released state dict loads strictly by key:

* stem ``Conv2d_1a_3x3`` … ``Conv2d_4a_3x3`` of ``BasicConv2d`` (bias-free conv + BN with eps 1e-3 +
  ReLU), two 3×3/2 max-pools;
* ``Mixed_5b/5c/5d`` = FID-InceptionA: the pool branch averages with ``count_include_pad=False``
  (TensorFlow's average pool ignores the zero padding; torchvision's counts it);
* ``Mixed_6a`` = InceptionB, ``Mixed_6b…6e`` = FID-InceptionC (same pooling fix);
* ``Mixed_7a`` = InceptionD, ``Mixed_7b`` = FID-InceptionE with the padding-free average pool, and
  ``Mixed_7c`` = FID-InceptionE with a **max** pool in its pool branch (a quirk of the TF graph);
* ``fc`` = Linear(2048, 1008): unused for FID but in the checkpoint, so kept for strict loading.

:meth:`FIDInceptionV3.forward` takes RGB in [0, 1] of any size, resizes to 299×299 bilinearly
(``align_corners=False``), maps to [−1, 1] and returns the 2048-d global-average-pooled "pool3"
features, exactly the input handling of pytorch-fid's default ``InceptionV3([3])``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.checkpoints.formats import LoadedCheckpoint
from mfsbench.checkpoints.mapping import load_strict
from mfsbench.checkpoints.safe_pickle import load_torch_file, strip_prefix
from mfsbench.errors import BadInputError

#: The file name pytorch-fid downloads; mfsbench never downloads it, the user passes its path.
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_INPUT_SIZE = 299
POOL3_DIM = 2048
FID_CLASSES = 1008


class BasicConv2d(nn.Module):
    """Bias-free conv → BatchNorm(eps=1e-3) → ReLU; keys ``conv.weight`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: Tensor) -> Tensor:
    """3×3/1 average pool that, like TensorFlow's, divides by the number of *real* pixels at borders."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg-pool→1×1, concatenated (64 + 64 + 96 + pool_features)."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 → 17: 3×3/2 | 1×1→3×3→3×3/2 | max-pool 3×3/2 (384 + 96 + cin)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    """Factorised 7×7 block (1×7 / 7×1 pairs), 4 × 192 output channels, TF-style average pool."""

    def __init__(self, cin: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 → 8: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max-pool 3×3/2 (320 + 192 + cin)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """Expanded-filter block: 320 + 2·384 + 2·384 + 192 = 2048 channels.

    ``max_pool`` selects the pool branch: False for ``Mixed_7b`` (TF-style average pool), True for
    ``Mixed_7c``, where the TensorFlow graph max-pools (pytorch-fid's ``FIDInceptionE_2``).
    """

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's InceptionV3 up to the final average pool ("pool3", 2048-d)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.fc = nn.Linear(POOL3_DIM, FID_CLASSES)  # in the checkpoint; never used for FID

    def forward(self, rgb01: Tensor) -> Tensor:
        """``(N, 3, H, W)`` RGB in [0, 1] → ``(N, 2048)`` pool3 features."""
        x = F.interpolate(rgb01, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)


def read_fid_inception(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of ``pt_inception-2015-12-05-*.pth`` (a plain state dict), read without running code.

    Raises:
        BadInputError: missing, unreadable or unsafe file, or a file that is not a tensor dict.
    """
    file = Path(path)
    obj = load_torch_file(file)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise BadInputError(f"{file} holds {type(obj).__name__}, not a state dict; pass {FID_WEIGHTS_FILE}")
    wrong = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
    if wrong:
        raise BadInputError(f"{file}: {', '.join(wrong[:5])} are not tensors; pass {FID_WEIGHTS_FILE}")
    return strip_prefix({str(k): v for k, v in obj.items()}, "module.")


def load_fid_inception(path: str | os.PathLike[str]) -> tuple[FIDInceptionV3, LoadedCheckpoint]:
    """Build :class:`FIDInceptionV3`, load ``path`` into it strictly and return it in eval mode.

    Raises:
        BadInputError: unreadable file, or any missing, unexpected or mis-shaped key (all listed).
    """
    state = read_fid_inception(path)
    model = FIDInceptionV3()
    load_strict(model, state, f"{path} (fid_inception)")
    record = LoadedCheckpoint(str(path), sha256_file(path), "fid_inception", len(state))
    return model.eval(), record


__all__ = ["FID_WEIGHTS_FILE", "POOL3_DIM", "FIDInceptionV3", "load_fid_inception", "read_fid_inception"]
