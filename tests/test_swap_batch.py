"""Several faces of one frame go through the frame stage as one batch (``--face many``): the same
outputs as one crop at a time, for every zoo family the swap command runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfsbench.models.folding import fold_batchnorm
from mfsbench.registry import create_model, get_spec
from mfsbench.swap.runners import TorchRunner


@pytest.mark.parametrize("name", ["test_mobilefaceswap", "test_simswap"])
def test_batched_frame_stage_equals_one_crop_at_a_time(name: str) -> None:
    spec = get_spec(name)
    torch.manual_seed(0)
    runner = TorchRunner(spec, create_model(name), spec.native_size)
    rng = np.random.default_rng(0)
    source = rng.integers(0, 255, (runner.adapter.source_size, runner.adapter.source_size, 3), np.uint8)
    runner.inject(source)
    crops = [rng.integers(0, 255, (spec.native_size, spec.native_size, 3), np.uint8) for _ in range(3)]
    batched = runner.run_frames(crops)
    assert runner.batch_ok is True
    for crop, result in zip(crops, batched, strict=True):
        one = runner.run_frame(crop)
        got, want = runner.decode(result), runner.decode(one)
        assert np.abs(got[0].astype(int) - want[0].astype(int)).max() <= 1  # uint8 rounding at most
        assert np.abs(got[1] - want[1]).max() <= 1e-5


def test_a_batch_one_only_frame_stage_falls_back_to_one_crop_at_a_time() -> None:
    spec = get_spec("test_mobilefaceswap")
    runner = TorchRunner(spec, create_model(spec.name), spec.native_size)
    calls: list[int] = []

    def batch_one(tensor: torch.Tensor) -> torch.Tensor:
        calls.append(tensor.shape[0])
        if tensor.shape[0] != 1:
            raise RuntimeError("expected batch 1")
        return tensor

    runner.frame_net = batch_one
    crops = [np.zeros((spec.native_size, spec.native_size, 3), np.uint8)] * 2
    assert len(runner.run_frames(crops)) == 2 and runner.batch_ok is False
    runner.run_frames(crops)
    assert calls == [2, 1, 1, 1, 1]  # tried once as a batch, then never again


def test_in_place_activations_give_the_same_frames() -> None:
    """The swap's torch runtime lets each activation overwrite its conv output; the frame stage as
    written (export, counting) allocates: the two give identical outputs."""
    spec = get_spec("test_mobilefaceswap")
    torch.manual_seed(0)
    runner = TorchRunner(spec, create_model(spec.name), spec.native_size)
    runner.inject(np.random.default_rng(1).integers(0, 255, (224, 224, 3), np.uint8))
    assert runner.frame_net.inplace_activations is True
    written = runner.model.frame_stage(runner.identity).eval()
    assert written.inplace_activations is False
    folded, count = fold_batchnorm(written)  # the runner folds batch norms too (tests/test_models_folding)
    folded = folded.to(memory_format=torch.channels_last)  # as the runner holds it
    assert count == runner.batchnorms_folded > 0
    assert runner.describe()["batchnorms_folded"] == count
    crop = torch.rand(2, 3, spec.native_size, spec.native_size)
    with torch.no_grad():
        outputs = runner.frame_net(crop.clone()), folded(crop.clone()), written(crop.clone())
        for fast, slow, plain in zip(*outputs, strict=True):
            assert torch.equal(fast, slow)
            assert float((fast - plain).abs().max()) <= 1e-5
