"""SimSwap 224, DeepFakes "Original" and the cited FaceController row.

The fast tests pin the architecture (official checkpoint keys, stage wiring, output shapes); the
``slow`` ones count the full-size networks under the ``paper`` convention and check both the exact
integers and the digits Table 1 prints.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from baselines.deepfakes import DeepFakesOriginal, same_padding
from baselines.simswap import (
    ApplyStyle,
    SimSwap224,
    SimSwapGenerator,
)
from mfsbench.counting import count_params, is_identity_derived
from mfsbench.registry import get_spec

torch.set_num_threads(2)

ARCFACE_PARAMS = 52_193_215
STYLE_LINEAR_PARAMS = 18 * (512 * 1024 + 1024)
GENERATOR_PARAMS = 55_051_779


def _bn_keys(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {"weight": (channels,), "bias": (channels,), "running_mean": (channels,),
              "running_var": (channels,), "num_batches_tracked": ()}
    return {f"{prefix}.{name}": shape for name, shape in shapes.items()}


def _conv_keys(prefix: str, cin: int, cout: int, k: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (cout, cin, k, k), f"{prefix}.bias": (cout,)}


def official_simswap_keys() -> dict[str, tuple[int, ...]]:
    """``latest_net_G.pth`` keys and shapes, built from the rules of the spec (§2.2)."""
    keys: dict[str, tuple[int, ...]] = {}
    keys |= _conv_keys("first_layer.1", 3, 64, 7) | _bn_keys("first_layer.2", 64)
    for index, (cin, cout) in zip((1, 2, 3), ((64, 128), (128, 256), (256, 512)), strict=True):
        keys |= _conv_keys(f"down{index}.0", cin, cout, 3) | _bn_keys(f"down{index}.1", cout)
    for block in range(9):
        for conv, style in (("conv1", "style1"), ("conv2", "style2")):
            keys |= _conv_keys(f"BottleNeck.{block}.{conv}.1", 512, 512, 3)
            keys[f"BottleNeck.{block}.{style}.linear.weight"] = (1024, 512)
            keys[f"BottleNeck.{block}.{style}.linear.bias"] = (1024,)
    for index, (cin, cout) in zip((3, 2, 1), ((512, 256), (256, 128), (128, 64)), strict=True):
        keys |= _conv_keys(f"up{index}.1", cin, cout, 3) | _bn_keys(f"up{index}.2", cout)
    keys |= _conv_keys("last_layer.1", 64, 3, 7)
    return keys


# --- SimSwap: architecture ------------------------------------------------------------------------


def test_simswap_generator_state_dict_matches_official_keys() -> None:
    generator = SimSwapGenerator()
    got = {name: tuple(t.shape) for name, t in generator.state_dict().items()}
    assert got == official_simswap_keys()
    assert count_params([generator]) == GENERATOR_PARAMS


def test_simswap_has_no_builtin_instance_norm() -> None:
    # nn.InstanceNorm2d would add 4 FLOPs/element under fvcore and break the 48.2G match.
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in SimSwapGenerator().modules())


@pytest.fixture(scope="module")
def simswap() -> SimSwap224:
    torch.manual_seed(0)
    model = SimSwap224().eval()
    # Non-trivial BN statistics, so the equivalence check exercises them too.
    with torch.no_grad():
        for module in model.netG.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


def test_simswap_identity_stage_holds_arcface_and_style_linears_only(simswap: SimSwap224) -> None:
    stage = simswap.identity_stage()
    assert count_params([stage]) == ARCFACE_PARAMS + STYLE_LINEAR_PARAMS
    allowed = {id(p) for p in simswap.id_net.parameters()}
    allowed |= {id(p) for style in simswap.netG.styles() for p in style.parameters()}
    assert {id(p) for p in stage.parameters()} == allowed, "no generator conv may sit in the identity stage"


def test_simswap_frame_stage_shares_convs_and_freezes_styles(simswap: SimSwap224) -> None:
    with torch.no_grad():
        identity = simswap.identity_stage()(torch.randn(1, 3, 112, 112))
    assert len(identity) == 36
    assert all(t.shape == (1, 512, 1, 1) for t in identity)
    frame = simswap.frame_stage(identity)
    assert not any(isinstance(m, (nn.Linear, ApplyStyle)) for m in frame.modules())
    generator_params = {id(p) for p in simswap.netG.parameters()}
    static = [p for p in frame.parameters() if not is_identity_derived(p)]
    injected = [p for p in frame.parameters() if is_identity_derived(p)]
    assert all(id(p) in generator_params for p in static), "static weights must be shared, not copied"
    assert len(injected) == 36 and not any(p.requires_grad for p in injected)
    assert count_params([frame]) == GENERATOR_PARAMS - STYLE_LINEAR_PARAMS + 18 * 2 * 512


def test_simswap_video_path_equals_image_path(simswap: SimSwap224) -> None:
    generator = torch.Generator().manual_seed(1)
    source = torch.randn(1, 3, 112, 112, generator=generator)
    target = torch.rand(1, 3, 32, 32, generator=generator)
    with torch.no_grad():
        image_mode = simswap(source, target)
        frame = simswap.frame_stage(simswap.identity_stage()(source))
        video_mode = frame(target)
    assert video_mode.shape == (1, 3, 32, 32)
    assert float(image_mode.min()) >= 0.0 and float(image_mode.max()) <= 1.0
    torch.testing.assert_close(video_mode, image_mode, rtol=1e-5, atol=1e-6)
    # A different source must change the output, or the injection would be a no-op.
    with torch.no_grad():
        other = simswap.frame_stage(simswap.identity_stage()(-source))(target)
    assert not torch.allclose(other, video_mode)


def test_simswap_size_rule_matches_the_architecture() -> None:
    spec = get_spec("simswap_224")
    generator = SimSwapGenerator().eval()
    latent = torch.nn.functional.normalize(torch.randn(1, 512), dim=1)
    with torch.no_grad():
        assert generator(torch.rand(1, 3, spec.size_rule.minimum, spec.size_rule.minimum), latent).shape[-1] \
            == spec.size_rule.minimum
        with pytest.raises(RuntimeError):
            generator(torch.rand(1, 3, 8, 8), latent)
    assert not spec.size_rule.accepts(8) and spec.size_rule.accepts(224)


# --- DeepFakes ------------------------------------------------------------------------------------


def test_tf_same_padding() -> None:
    assert same_padding(5, 2) == (1, 2, 1, 2)
    assert same_padding(3, 1) == (1, 1, 1, 1)
    assert same_padding(5, 1) == (2, 2, 2, 2)


def test_deepfakes_output_and_parts() -> None:
    torch.manual_seed(0)
    model = DeepFakesOriginal().eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert model.encoder.convs(x).shape == (1, 1024, 4, 4)
        latent = model.encoder(x)
        out = model(x)
    assert latent.shape == (1, 512, 8, 8)
    assert out.shape == (1, 3, 64, 64)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert model.frame_stage(None) is model and model.identity_stage() is None
    assert count_params([model.encoder]) == 69_662_976
    assert count_params([model.decoder_a]) == count_params([model.decoder_b]) == 6_199_747


# --- FaceController -------------------------------------------------------------------------------


def test_facecontroller_is_cited_only() -> None:
    spec = get_spec("facecontroller_224")
    assert spec.builder is None and not spec.runnable
    assert spec.stages == () and spec.modes == ()
    assert spec.provenance == "cited"
    assert spec.reference is not None and spec.reference.cited_only
    assert (spec.reference.image_params_m, spec.reference.image_gflops,
            spec.reference.video_params_m, spec.reference.video_gflops) == (306, 192, 236, 177)


# --- Paper-convention counts (full size) -----------------------------------------------------------


@pytest.mark.slow
def test_simswap_paper_counts() -> None:
    from mfsbench.complexity import compose_modes, count_spec

    spec = get_spec("simswap_224")
    counts = count_spec(spec, 224, "paper")
    modes = compose_modes(spec, counts)
    image, video = modes["image"], modes["video"]

    assert counts["identity"].params == ARCFACE_PARAMS + STYLE_LINEAR_PARAMS == 61_648_831
    assert counts["frame"].params == 45_614_595
    assert counts["frame"].learned_params == 45_596_163
    assert image.params == 107_244_994
    assert image.flops == 55_746_933_376
    assert video.params == 45_614_595
    assert video.flops == 48_214_319_104
    assert (counts["identity"].flops.flops, counts["frame"].flops.flops) == (
        spec.expected.identity_flops, spec.expected.frame_flops)  # type: ignore[union-attr]

    ref = spec.reference
    assert ref is not None
    assert round(image.params / 1e6) == ref.image_params_m == 107
    assert round(image.flops / 1e9, 1) == ref.image_gflops == 55.7
    assert round(video.params / 1e6, 1) == ref.video_params_m == 45.6
    assert round(video.flops / 1e9, 1) == ref.video_gflops == 48.2


@pytest.mark.slow
def test_deepfakes_paper_counts() -> None:
    from mfsbench.complexity import compose_modes, count_spec

    spec = get_spec("deepfakes_64")
    modes = compose_modes(spec, count_spec(spec, 64, "paper"))
    ref = spec.reference
    assert ref is not None
    for mode in (modes["image"], modes["video"]):
        assert mode.params == 82_062_470
        assert mode.flops == 1_900_150_784
        assert round(mode.params / 1e6, 1) == ref.image_params_m == ref.video_params_m == 82.1
        assert round(mode.flops / 1e9, 2) == ref.image_gflops == ref.video_gflops == 1.90
