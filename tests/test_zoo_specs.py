"""Every registered spec builds, runs, and still counts what its spec says (torchvision's habit).

The expected values live in the specs; a change to an architecture that moves a count by a single
parameter or MAC fails here and must be a conscious edit of the spec.
"""

from __future__ import annotations

import gc

import pytest
import torch

from mfsbench.complexity import count_spec
from mfsbench.counting import random_inputs
from mfsbench.registry import create_model, get_spec, list_models

RUNNABLE = list_models(include_tests=True, runnable_only=True)
SMALL = {name for name in RUNNABLE if get_spec(name).is_test}


def _small_size(name: str) -> int:
    """The smallest size the architecture takes, so forward tests stay fast."""
    spec = get_spec(name)
    rule = spec.size_rule
    if rule.fixed:
        return min(rule.fixed)
    return max(rule.minimum, rule.multiple_of * ((64 + rule.multiple_of - 1) // rule.multiple_of))


def _params(name: str) -> list[object]:
    return [pytest.param(n, marks=() if n in SMALL else pytest.mark.slow) for n in RUNNABLE]


@pytest.mark.parametrize("name", _params("forward"))
def test_builds_and_runs_forward(name: str) -> None:
    spec = get_spec(name)
    size = _small_size(name)
    model = create_model(name)
    identity = None
    with torch.no_grad():
        identity_module = model.identity_stage()
        if "identity" in spec.stage_names:
            shapes = spec.stage("identity").input_shapes(size)
            identity = identity_module(*random_inputs(shapes.values()))
            assert all(torch.isfinite(t).all() for t in identity)
        if "frame" in spec.stage_names:
            shapes = spec.stage("frame").input_shapes(size)
            out = model.frame_stage(identity)(*random_inputs(shapes.values()))
            first = out[0] if isinstance(out, tuple) else out
            assert first.shape[-2:] == (size, size)
            assert torch.isfinite(first).all()
    del model
    gc.collect()


@pytest.mark.parametrize("name", _params("counts"))
def test_counts_equal_the_spec(name: str) -> None:
    spec = get_spec(name)
    expected = spec.expected
    assert expected is not None
    counts = count_spec(spec, spec.native_size, "paper")
    got_identity = counts.get("identity")
    got_frame = counts.get("frame")
    assert (got_identity.params if got_identity else None) == expected.identity_params
    assert (got_identity.flops.flops if got_identity else None) == expected.identity_flops
    assert (got_frame.params if got_frame else None) == expected.frame_params
    assert (got_frame.flops.flops if got_frame else None) == expected.frame_flops
    for stage in counts.values():
        assert stage.flops.cross_check_rel_diff is not None and stage.flops.cross_check_rel_diff <= 0.01
