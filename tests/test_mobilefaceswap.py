"""The student port: official key layout, identity injection, fusion blend, ablation wiring."""

from __future__ import annotations

import ast

import numpy as np
import pytest
import torch

from mfsbench.checkpoints.mapping import load_strict, paddle_to_torch
from mfsbench.errors import BadInputError
from mfsbench.models.mobilefaceswap import MobileFaceSwap, Mod2Weight
from mfsbench.models.tiny import build_tiny_student
from tests.conftest import DATA


def _official_sections() -> dict[str, dict[str, tuple[int, ...]]]:
    """Paddle key → shape per checkpoint, read from the spec's key list."""
    sections: dict[str, dict[str, tuple[int, ...]]] = {}
    current = None
    for line in (DATA / "mobilefaceswap_keys.tsv").read_text().splitlines():
        if line.startswith("## "):
            name = line.split()[1]
            current = {"MobileFaceSwap_224.pdparams": "swap", "arcface.pdparams": "arcface"}.get(name)
            continue
        if current is None or not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split("\t")[:2]
        sections.setdefault(current, {})[key] = tuple(ast.literal_eval(shape))
    return sections


OFFICIAL = _official_sections()


def _synthetic(section: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in OFFICIAL[section].items()}


def test_key_list_has_the_official_counts() -> None:
    assert len(OFFICIAL["swap"]) == 167
    assert len(OFFICIAL["arcface"]) == 691


@pytest.mark.slow
def test_synthetic_official_checkpoints_load_with_every_key_matched() -> None:
    model = MobileFaceSwap()
    swap, arcface = _synthetic("swap"), _synthetic("arcface", 1)
    load_strict(model.swap, paddle_to_torch(swap), "MobileFaceSwap_224.pdparams")
    load_strict(model.id_net, paddle_to_torch(arcface), "arcface.pdparams")
    # values landed where the names say, with Linear weights transposed
    np.testing.assert_array_equal(
        model.swap.EncoderModulation[2].style.weight.detach().numpy(),
        swap["EncoderModulation.2.style.weight"].T,
    )
    np.testing.assert_array_equal(model.swap.mask[0][3].running_var.numpy(), swap["mask.0.3._variance"])
    np.testing.assert_array_equal(
        model.id_net.layer3[7].se.fc[1].weight.detach().numpy(), arcface["layer3.7.se.fc.1._weight"]
    )
    # every stored key is consumed: the module has nothing beyond them but BN batch counters
    extra = set(model.swap.state_dict()) - {k for k in paddle_to_torch(swap)}
    assert all(k.endswith("num_batches_tracked") for k in extra)


def test_wrong_checkpoint_lists_the_problem_keys() -> None:
    model = MobileFaceSwap()
    state = paddle_to_torch(_synthetic("swap"))
    del state["final.7.bias"]
    state["predictor.extra"] = torch.zeros(1)
    state["mask.5.weight"] = torch.zeros(1, 3, 3, 3)
    with pytest.raises(BadInputError) as info:
        load_strict(model.swap, state, "broken.pdparams")
    message = str(info.value)
    assert "1 missing: final.7.bias" in message
    assert "1 unexpected: predictor.extra" in message
    assert "mask.5.weight (1, 3, 3, 3) (expected (1, 2, 3, 3))" in message


def test_demodulation_gives_unit_rows_with_one_plus_s_scaling() -> None:
    torch.manual_seed(0)
    mod = Mod2Weight(cin=5, cout=7, id_dim=4)
    embedding = torch.randn(1, 4)
    kernel = mod(embedding)
    assert kernel.shape == (7, 5, 1, 1)
    torch.testing.assert_close(kernel.flatten(1).norm(dim=1), torch.ones(7))
    scaled = mod.weight[:, :, 0, 0] * (1 + mod.style(embedding))
    expected = scaled / scaled.norm(dim=1, keepdim=True)
    torch.testing.assert_close(kernel[:, :, 0, 0], expected)


def test_identity_stage_outputs_are_the_idn_kernels() -> None:
    model = build_tiny_student().eval()
    with torch.no_grad():
        identity = model.identity_stage()(torch.rand(1, 3, 112, 112))
    shapes = [tuple(t.shape) for t in identity]
    config = model.config
    assert shapes[:5] == [(c, 1, 4, 4) for c in config.encoder_depthwise]
    assert shapes[5:9] == [(c, 1, 3, 3) for c in config.decoder_depthwise]
    assert shapes[9:] == [(cout, cin, 1, 1) for cin, cout in config.pointwise_pairs]


def test_frame_stage_blends_with_the_mask_and_keeps_size() -> None:
    model = build_tiny_student().eval()
    target = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        frame = model.frame_stage(model.identity_stage()(torch.rand(1, 3, 112, 112)))
        result, mask = frame(target)
        raw = (1 + frame.final(_decoded(frame, target))) / 2
    assert result.shape == target.shape and mask.shape == (1, 1, 96, 96)
    assert float(mask.min()) > 0 and float(mask.max()) < 1
    torch.testing.assert_close(result, raw * mask + (1 - mask) * target)


def _decoded(frame: torch.nn.Module, target: torch.Tensor) -> torch.Tensor:
    """Re-run the U-Net body by hand: encoder, decoder with [decoder, skip] concat."""
    x = (target - 0.5) / 0.5
    feats = []
    for block in frame.Encoder:
        x = torch.nn.functional.leaky_relu(block(x), 0.1)
        feats.append(x)
    skips = list(reversed(feats[1:-1]))
    for index, block in enumerate(frame.Decoder):
        x = torch.nn.functional.leaky_relu(block(frame.up(x)), 0.1)
        if index < len(skips):
            x = torch.cat([x, skips[index]], 1)
    return x


def test_different_sources_give_different_swaps() -> None:
    model = build_tiny_student().eval()
    target = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = model(torch.rand(1, 3, 112, 112), target)[0]
        b = model(torch.rand(1, 3, 112, 112), target)[0]
    assert not torch.allclose(a, b)


def test_injected_kernels_are_marked_and_static_heads_shared() -> None:
    from mfsbench.counting import is_identity_derived

    model = build_tiny_student().eval()
    with torch.no_grad():
        frame = model.frame_stage(model.identity_stage()(torch.rand(1, 3, 112, 112)))
    derived = [n for n, p in frame.named_parameters() if is_identity_derived(p)]
    assert len(derived) == 18 and all(n.startswith(("Encoder", "Decoder")) for n in derived)
    assert frame.final is model.swap.final and frame.mask is model.swap.mask
