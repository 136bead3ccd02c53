"""FaceShifter (IR-SE-50 + AEI-Net + HEAR-Net) and FSGAN v2 generators, both re-implementations.

Parameter counts are checked on the meta device (no memory, no arithmetic), so they run in the fast
suite at full size. The image-vs-video equivalence runs on a narrow configuration of the same code
at the real 256 input; the ``slow`` tests repeat it at full width and count FLOPs against the
spec's reference measurements (``faceshifter_fsgan_eval_nets.md``). Exact regression counts of the
registered specs are recomputed by ``tests/test_zoo_specs.py``.
"""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

from baselines.faceshifter import (
    AEINet,
    FaceShifter,
    HEARNet,
    IRSEBackbone,
)
from baselines.fsgan import FSGAN, MultiScaleResUNet
from mfsbench.counting import count_flops, count_params, is_identity_derived, random_inputs
from mfsbench.registry import get_spec

torch.set_num_threads(2)

# Reference figures of the spec (§2 table, §3.1, §3.2, §4.1); rel. tolerance 0.1 % unless noted.
SPEC_IRSE50_PARAMS_M = 43.80
SPEC_AEI_PARAMS_M = 352.18
SPEC_ENCODER_PARAMS_M = 67.09
SPEC_HEAR_PARAMS_M = 16.66
SPEC_FSGAN_PARAMS_M = {"reenact": 76.00, "inpaint": 74.18, "blend": 74.24}
SPEC_IRSE50_GFLOPS = 6.33
SPEC_AEI_GFLOPS_2021 = 73.40
SPEC_HEAR_GFLOPS_2021 = 6.55

#: AAD layers: 3 blocks with equal widths (2 layers) + 5 that change width (3 layers).
AAD_LAYERS = 3 * 2 + 5 * 3


def _millions(module: nn.Module) -> float:
    return count_params([module]) / 1e6


def _on_meta(factory: type[nn.Module], *args: object) -> nn.Module:
    with torch.device("meta"):
        return factory(*args)


def _randomise_batch_norm(model: nn.Module) -> None:
    """Non-trivial running statistics, so the equivalence checks exercise eval-mode BN too."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)


# --- FaceShifter: sizes --------------------------------------------------------------------------


def test_irse50_has_the_treb1en_size() -> None:
    assert _millions(_on_meta(IRSEBackbone)) == pytest.approx(SPEC_IRSE50_PARAMS_M, rel=1e-3)


def test_aei_net_paper_faithful_sizes() -> None:
    aei = _on_meta(AEINet)
    assert isinstance(aei, AEINet)
    assert _millions(aei) == pytest.approx(SPEC_AEI_PARAMS_M, rel=1e-3)
    assert _millions(aei.encoder) == pytest.approx(SPEC_ENCODER_PARAMS_M, rel=1e-3)
    assert aei.encoder.att_channels == (1024, 2048, 1024, 512, 256, 128, 64, 64)
    assert len(aei.generator.identity_head.projections) == AAD_LAYERS


def test_hear_net_size() -> None:
    assert _millions(_on_meta(HEARNet)) == pytest.approx(SPEC_HEAR_PARAMS_M, rel=1e-3)


def test_faceshifter_specs_are_consistent() -> None:
    for spec in (get_spec("faceshifter_256"), get_spec("faceshifter_aei_256")):
        assert spec.provenance == "reimplementation"
        assert spec.stage_names == ("identity", "frame")
        assert spec.stage("identity").input_shapes(256) == {"source": (1, 3, 112, 112)}
        assert spec.expected is not None and spec.reference is not None
        assert spec.reference.row == "FaceShifter"
    full, aei_only = get_spec("faceshifter_256"), get_spec("faceshifter_aei_256")
    assert full.expected.frame_params > aei_only.expected.frame_params


# --- FaceShifter: stages on a narrow configuration -----------------------------------------------


def _narrow_faceshifter(with_hear: bool) -> FaceShifter:
    """The same classes with narrow widths; the input must stay 256 (seven stride-2 downs to 2²)."""
    torch.manual_seed(0)
    id_net = IRSEBackbone(units=(1, 1, 1, 1), widths=(16, 16, 32, 32))
    model = FaceShifter(with_hear=with_hear, base=2, id_net=id_net, hear_base=4).eval()
    _randomise_batch_norm(model)
    return model


@pytest.fixture(scope="module", params=[False, True], ids=["aei", "aei+hear"])
def narrow(request: pytest.FixtureRequest) -> FaceShifter:
    return _narrow_faceshifter(request.param)


def _pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    source = torch.rand(1, 3, 112, 112, generator=generator) * 2 - 1
    target = torch.rand(1, 3, 256, 256, generator=generator) * 2 - 1
    return source, target


def test_identity_stage_holds_id_net_and_identity_layers_only(narrow: FaceShifter) -> None:
    stage = narrow.identity_stage()
    allowed = {id(p) for p in narrow.id_net.parameters()}
    allowed |= {id(p) for p in narrow.aei.generator.identity_head.parameters()}
    assert {id(p) for p in stage.parameters()} == allowed
    with torch.no_grad():
        identity = stage(_pair(0)[0])
    assert len(identity) == 1 + 2 * AAD_LAYERS
    assert identity[0].shape == (1, 64, 2, 2)


def test_frame_stage_shares_static_weights_and_freezes_identity(narrow: FaceShifter) -> None:
    with torch.no_grad():
        identity = narrow.identity_stage()(_pair(0)[0])
    frame = narrow.frame_stage(identity)
    model_params = {id(p) for p in narrow.parameters()}
    static = [p for p in frame.parameters() if not is_identity_derived(p)]
    injected = [p for p in frame.parameters() if is_identity_derived(p)]
    assert all(id(p) in model_params for p in static), "static weights must be shared, not copied"
    assert len(injected) == len(identity) and not any(p.requires_grad for p in injected)
    holds_linear = any(isinstance(m, nn.Linear) for m in frame.modules())
    # Only HEAR-Net's heuristic error needs the target's own identity (id net + linears) per frame.
    assert holds_linear == (narrow.hear is not None)


def test_video_path_equals_image_path(narrow: FaceShifter) -> None:
    source, target = _pair(1)
    with torch.no_grad():
        image_mode = narrow(source, target)
        video_mode = narrow.frame_stage(narrow.identity_stage()(source))(target)
        other = narrow.frame_stage(narrow.identity_stage()(_pair(2)[0]))(target)
    assert video_mode.shape == (1, 3, 256, 256)
    torch.testing.assert_close(video_mode, image_mode, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(other, video_mode), "the injected identity must change the output"


def test_frame_stage_rejects_a_foreign_identity(narrow: FaceShifter) -> None:
    from mfsbench.errors import BadInputError

    with pytest.raises(BadInputError):
        narrow.frame_stage((torch.zeros(1, 64, 2, 2),))
    with pytest.raises(BadInputError):
        narrow.frame_stage(None)


# --- FaceShifter: full size (slow) ---------------------------------------------------------------


@pytest.mark.slow
def test_full_aei_video_path_equals_end_to_end_aei() -> None:
    torch.manual_seed(0)
    model = FaceShifter(with_hear=False).eval()
    _randomise_batch_norm(model)
    source, target = _pair(3)
    with torch.no_grad():
        z_id = model.embed(source)
        end_to_end = model.aei(target, z_id)
        video_mode = model.frame_stage(model.identity_stage()(source))(target)
    assert video_mode.shape == (1, 3, 256, 256)
    torch.testing.assert_close(video_mode, end_to_end, rtol=1e-5, atol=1e-5)
    del model, end_to_end, video_mode
    gc.collect()


@pytest.mark.slow
def test_irse50_flops_at_112() -> None:
    net = IRSEBackbone().eval()
    flops = count_flops(net, random_inputs([(1, 3, 112, 112)]), "paper").flops
    assert flops / 1e9 == pytest.approx(SPEC_IRSE50_GFLOPS, rel=2e-3)


@pytest.mark.slow
def test_hear_net_flops_at_256() -> None:
    net = HEARNet().eval()
    flops = count_flops(net, random_inputs([(1, 3, 256, 256)] * 2), "paper").flops
    assert flops / 1e9 == pytest.approx(SPEC_HEAR_GFLOPS_2021, rel=5e-3)


@pytest.mark.slow
def test_aei_net_end_to_end_flops_at_256() -> None:
    aei = AEINet().eval()
    flops = count_flops(aei, random_inputs([(1, 3, 256, 256), (1, 512)]), "paper").flops
    assert flops / 1e9 == pytest.approx(SPEC_AEI_GFLOPS_2021, rel=1e-3)
    del aei
    gc.collect()


# --- FSGAN ---------------------------------------------------------------------------------------


def test_fsgan_generator_sizes_match_the_released_v2_networks() -> None:
    fsgan = _on_meta(FSGAN)
    for name, expected_m in SPEC_FSGAN_PARAMS_M.items():
        assert _millions(getattr(fsgan, name)) == pytest.approx(expected_m, rel=1e-3), name
    # The innermost 1024-wide flat block holds about half of each generator.
    inner = fsgan.reenact.global_net.flats[-1]
    assert _millions(inner) == pytest.approx(37.76, rel=1e-3)


def test_fsgan_spec_has_a_frame_stage_only() -> None:
    spec = get_spec("fsgan_256")
    assert spec.stage_names == ("frame",)
    assert spec.modes == ("image", "video")
    assert spec.stage("frame").input_shapes(256) == {
        "source_heatmaps": (1, 101, 256, 256),
        "target": (1, 3, 256, 256),
        "mask": (1, 1, 256, 256),
    }
    assert spec.size_rule.accepts(256) and not spec.size_rule.accepts(260)
    assert FSGAN().identity_stage() is None


def test_fsgan_frame_stage_chains_the_three_generators() -> None:
    torch.manual_seed(0)
    fsgan = FSGAN(ngf=8).eval()
    _randomise_batch_norm(fsgan)
    frame = fsgan.frame_stage(None)
    assert {id(p) for p in frame.parameters()} == {id(p) for p in fsgan.parameters()}
    source_heatmaps, target, mask = random_inputs([(1, 101, 64, 64), (1, 3, 64, 64), (1, 1, 64, 64)])
    with torch.no_grad():
        out = frame(source_heatmaps, target, mask)
        reenacted = fsgan.reenact(source_heatmaps)
        completed = fsgan.inpaint(torch.cat((reenacted * mask, mask), dim=1))
        transfer = completed * mask + target * (1 - mask)
        expected = fsgan.blend(torch.cat((transfer, target, mask), dim=1))
    assert out.shape == (1, 3, 64, 64)
    assert float(out.abs().max()) <= 1.0
    torch.testing.assert_close(out, expected)


def test_multiscale_resunet_runs_the_global_net_at_half_resolution() -> None:
    net = MultiScaleResUNet(4, ngf=8).eval()
    seen: list[tuple[int, ...]] = []
    net.global_net.in_conv.register_forward_hook(lambda _m, inputs, _o: seen.append(tuple(inputs[0].shape)))
    with torch.no_grad():
        out = net(torch.rand(1, 4, 32, 32))
    assert out.shape == (1, 3, 32, 32)
    assert seen == [(1, 4, 16, 16)], "the proper pyramid feeds the global U-Net the half-size level"
