"""The counter against hand-derived values on tiny graphs (fvcore's own testing habit)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mfsbench import counting
from mfsbench.counting import count_flops, count_params
from mfsbench.errors import BadInputError, CountMismatchError


def _x(*shape: int) -> tuple[torch.Tensor]:
    return (torch.rand(*shape),)


def test_conv_is_macs_without_bias() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    result = count_flops(conv, _x(1, 3, 10, 10), "paper")
    assert result.flops == 8 * 10 * 10 * 3 * 9
    assert result.matrix_macs == result.torch_matrix_macs == result.flops


def test_batch_norm_rules_per_convention() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
    conv = 4 * 3 * 5 * 5
    elements = 4 * 5 * 5
    assert count_flops(net, _x(1, 3, 5, 5), "paper").flops == conv + 5 * elements
    assert count_flops(net, _x(1, 3, 5, 5), "fvcore").flops == conv + 2 * elements
    assert count_flops(net, _x(1, 3, 5, 5), "macs").flops == conv


def test_bilinear_upsample_is_four_per_output_element() -> None:
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
    assert count_flops(up, _x(1, 2, 3, 3), "paper").flops == 4 * 2 * 6 * 6
    assert count_flops(up, _x(1, 2, 3, 3), "macs").flops == 0


def test_transposed_conv_old_and_new_formulas() -> None:
    deconv = nn.ConvTranspose2d(6, 4, 4, 2, 1)  # 5x5 -> 10x10
    correct = 1 * 5 * 5 * 6 * 4 * 16  # every input pixel scatters Cout·k² products per Cin
    old = 1 * 10 * 10 * 4 * 4 * 16  # 2021 fvcore: B·out_HW·Cout·w[1]·k², w[1] = Cout
    paper = count_flops(deconv, _x(1, 6, 5, 5), "paper")
    assert paper.flops == old
    assert paper.matrix_macs == correct == paper.torch_matrix_macs
    assert count_flops(deconv, _x(1, 6, 5, 5), "fvcore").flops == correct


def test_linear_counts_in_times_out() -> None:
    assert count_flops(nn.Linear(7, 5), _x(2, 7), "paper").flops == 2 * 7 * 5


def test_unknown_ops_are_kept_not_dropped() -> None:
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.LeakyReLU(0.1), nn.Sigmoid())
    result = count_flops(net, _x(1, 3, 4, 4), "paper")
    assert result.unsupported_ops == {"aten::leaky_relu": 1, "aten::sigmoid": 1}


def test_disagreeing_counters_fail_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counting, "torch_matrix_macs", lambda module, inputs: 1)
    with pytest.raises(CountMismatchError, match="FlopCounterMode"):
        count_flops(nn.Conv2d(3, 8, 3), _x(1, 3, 8, 8), "paper")


def test_unknown_convention_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="paper, fvcore, macs"):
        count_flops(nn.Conv2d(3, 8, 3), _x(1, 3, 8, 8), "thop")  # type: ignore[arg-type]


def test_params_are_distinct_tensors() -> None:
    shared = nn.Linear(4, 4)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_params([net]) == 20
    assert count_params([net, shared]) == 20
    bn = nn.BatchNorm2d(8)
    assert count_params([bn]) == 16  # running statistics are not parameters


def test_meta_cross_check_leaves_weights_untouched() -> None:
    conv = nn.Conv2d(3, 4, 3)
    before = conv.weight.detach().clone()
    counting.torch_matrix_macs(conv, _x(1, 3, 6, 6))
    assert conv.weight.device.type == "cpu"
    assert torch.equal(conv.weight, before)


def test_cheap_init_changes_no_count_and_restores_torch_init() -> None:
    from mfsbench.complexity import count_spec
    from mfsbench.registry import create_model, get_spec

    spec = get_spec("test_mobilefaceswap")
    kaiming = nn.init.kaiming_uniform_
    cheap = count_spec(spec, spec.native_size, "paper")
    assert nn.init.kaiming_uniform_ is kaiming  # restored on exit
    # the same counts from a network built with torch's own random initialisation
    model = create_model(spec.name)
    frame_stage = model.frame_stage(model.identity_stage()(*counting.random_inputs(
        spec.stage("identity").input_shapes(spec.native_size).values())))
    inputs = counting.random_inputs(spec.stage("frame").input_shapes(spec.native_size).values())
    random_count = count_flops(frame_stage, inputs, "paper")
    assert cheap["frame"].flops.flops == random_count.flops
    assert cheap["frame"].params == count_params([frame_stage])
    with counting.cheap_init():
        built = nn.Conv2d(4, 8, 3)
    assert torch.all(built.weight == 1 / 36) and torch.all(built.bias == 0)


@pytest.mark.parametrize("cross_check", [True, False])
def test_count_spec_runs_the_identity_stage_once_and_builds_the_frame_stage_from_it(
    monkeypatch: pytest.MonkeyPatch, cross_check: bool
) -> None:
    """The counter's own trace already computes the identity; a second CPU forward only costs time."""
    from mfsbench.complexity import count_spec
    from mfsbench.models import mobilefaceswap
    from mfsbench.registry import get_spec

    runs: list[str] = []
    built: list[tuple[torch.Tensor, ...]] = []
    forward, frame_stage = mobilefaceswap.IdentityStage.forward, mobilefaceswap.MobileFaceSwap.frame_stage

    def counted(self: nn.Module, source: torch.Tensor) -> tuple[torch.Tensor, ...]:
        runs.append(source.device.type)
        return forward(self, source)

    def recorded(self: nn.Module, identity: tuple[torch.Tensor, ...]) -> nn.Module:
        built.append(identity)
        return frame_stage(self, identity)

    monkeypatch.setattr(mobilefaceswap.IdentityStage, "forward", counted)
    monkeypatch.setattr(mobilefaceswap.MobileFaceSwap, "frame_stage", recorded)
    spec = get_spec("test_mobilefaceswap")
    counts = count_spec(spec, spec.native_size, "paper", cross_check=cross_check)
    assert runs == (["cpu", "meta"] if cross_check else ["cpu"])
    (identity,) = built
    assert all(t.device.type == "cpu" and not t.requires_grad for t in identity)
    assert counts["frame"].flops.flops == spec.expected.frame_flops
