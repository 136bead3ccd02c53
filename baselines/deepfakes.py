"""DeepFakes, faceswap's "Original" model (64×64): the "DeepFakes" row of Table 1 (82.1M / 1.90G).

Architecture of deepfakes/faceswap ``plugins/train/model/original.py`` (the same network as the 2018
``Model_Original``): one shared encoder and one decoder per identity. Swapping A → B encodes a face
of A and decodes it with B's decoder, so the identity lives in the decoder weights and there is no
identity stage; the one stage is the whole module. Its parameters are the encoder plus *both*
decoders (what a deployed faceswap model stores: 82,062,470), its FLOPs one conversion pass,
encoder → ``decoder_b`` (1.900G); running both decoders would be 2.83G and match nothing.

Porting notes:

* Keras ``padding='same'`` pads a 5×5 stride-2 conv on an even map by 1 before and 2 after; torch's
  symmetric ``padding`` cannot express that, so every conv is preceded by an explicit
  :class:`~torch.nn.ZeroPad2d` computed the TensorFlow way, and the sizes come out exact
  (64 → 32 → 16 → 8 → 4).
* faceswap's Keras ``PixelShuffler`` reads the channels in (rh, rw, c) order, ``nn.PixelShuffle``
  in (c, rh, rw). Weights converted from Keras need the output channels of each upscale conv
  permuted; parameter and FLOP counts are unaffected. Likewise Keras flattens the 4×4×1024 map in
  HWC order, torch in CHW: a permutation of the dense weight, with the same counts.
* There are no official PyTorch weights, hence provenance "reimplementation".
"""

from __future__ import annotations

from itertools import pairwise

from torch import Tensor, nn

from mfsbench.models.base import Identity, SwapNet

#: faceswap's defaults for the Original model.
INPUT_SIZE = 64
ENCODER_DIM = 1024
LEAKY_SLOPE = 0.1


def same_padding(kernel_size: int, stride: int) -> tuple[int, int, int, int]:
    """TensorFlow's 'same' padding ``(left, right, top, bottom)`` for a map divisible by ``stride``.

    TF pads ``max(k - s, 0)`` in total when the input is a multiple of the stride, the smaller half
    first; that makes the padding independent of the map size, so it can be a static layer.
    """
    total = max(kernel_size - stride, 0)
    before, after = total // 2, total - total // 2
    return (before, after, before, after)


class SameConv2d(nn.Sequential):
    """``Conv2D(..., padding='same')`` as an explicit zero pad followed by an unpadded conv."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.ZeroPad2d(same_padding(kernel_size, stride)),
            nn.Conv2d(cin, cout, kernel_size, stride=stride),
        )


class DownBlock(nn.Sequential):
    """faceswap ``conv(f)``: 5×5 stride-2 'same' conv + LeakyReLU(0.1)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(SameConv2d(cin, cout, 5, stride=2), nn.LeakyReLU(LEAKY_SLOPE))


class UpscaleBlock(nn.Sequential):
    """faceswap ``upscale(f)``: 3×3 'same' conv to 4f channels + LeakyReLU(0.1) + PixelShuffle(2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            SameConv2d(cin, 4 * cout, 3), nn.LeakyReLU(LEAKY_SLOPE), nn.PixelShuffle(2)
        )


class Encoder(nn.Module):
    """Shared encoder: 4 down convs (128…1024), dense bottleneck (1024), dense back to 4×4×1024,
    one upscale to 8×8×512 (69,662,976 params)."""

    def __init__(self, input_size: int = INPUT_SIZE, encoder_dim: int = ENCODER_DIM) -> None:
        super().__init__()
        widths = (3, 128, 256, 512, 1024)
        self.convs = nn.Sequential(*(DownBlock(a, b) for a, b in pairwise(widths)))
        self.side = input_size // 16
        self.channels = widths[-1]
        flat = self.channels * self.side * self.side
        self.dense1 = nn.Linear(flat, encoder_dim)
        self.dense2 = nn.Linear(encoder_dim, flat)
        self.upscale = UpscaleBlock(self.channels, 512)

    def forward(self, x: Tensor) -> Tensor:
        x = self.convs(x).flatten(1)
        x = self.dense2(self.dense1(x))
        x = x.view(-1, self.channels, self.side, self.side)
        return self.upscale(x)


class Decoder(nn.Module):
    """One identity's decoder: upscales 512→256→128→64, then a 5×5 conv to RGB + sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.upscales = nn.Sequential(
            UpscaleBlock(512, 256), UpscaleBlock(256, 128), UpscaleBlock(128, 64)
        )
        self.face_out = SameConv2d(64, 3, 5)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return self.sigmoid(self.face_out(self.upscales(x)))


class DeepFakesOriginal(SwapNet):
    """Encoder + decoder A + decoder B; ``forward`` converts a face of A into identity B."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder_a = Decoder()
        self.decoder_b = Decoder()

    def forward(self, target: Tensor) -> Tensor:
        """64×64 RGB face of A in [0, 1] → the same face with B's identity, RGB in [0, 1]."""
        return self.decoder_b(self.encoder(target))

    def frame_stage(self, identity: Identity | None) -> DeepFakesOriginal:
        # The identity is the decoder_b weights, so the whole model is the per-frame network; both
        # decoders stay in it because both are part of the one trained (and deployed) model.
        return self
