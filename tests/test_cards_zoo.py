"""The ONNX counter against the torch counter: a zoo network exported to ONNX, described by a card,
must count exactly what the torch counter counts on the module it came from (issue 17 item 4).

Weights are drawn at random first: with fresh initialisation many tensors are equal (every batch-norm
weight is 1), and the exporter's optimiser merges equal initializers, which would hide a counting
error behind a deduplication.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mfsbench.cards.count import count_stages
from mfsbench.cards.load import load_card

CARD = """schema = 1
id = "student_card"
family = "mobilefaceswap"
[license]
id = "MIT"
commercial = true
[files.swapper]
path = "frame.onnx"
[files.encoder]
path = "identity.onnx"
[io]
target = {{ name = "target", shape = [1, 3, {size}, {size}] }}
source = {{ name = "source", shape = [1, 3, 112, 112] }}
output = {{ index = 0 }}
[target]
template = "arcface_112_v2"
size = {size}
[identity]
kind = "embedding"
encoder = "encoder"
"""


def _export(name: str, folder: Path, *, optimize: bool, stages: tuple[str, ...] = ("identity", "frame"),
            ) -> tuple[dict, dict]:
    """Export both stages of ``name``; return torch's (params, executed MACs) per stage and the modules."""
    from mfsbench.counting import count_params
    from mfsbench.device.macs import executed_macs
    from mfsbench.export.onnx import export_onnx
    from mfsbench.export.stages import stage_module
    from mfsbench.registry import create_model, get_spec

    spec = get_spec(name)
    torch.manual_seed(0)
    model = create_model(name)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    expected = {}
    for stage, input_name in (("identity", "source"), ("frame", "target")):
        if stage not in stages:
            continue
        module, example = stage_module(spec, model, stage, spec.native_size)
        with torch.no_grad():
            result = module(*example)
        outputs = len(result) if isinstance(result, tuple) else 1
        export_onnx(module, example, folder / f"{stage}.onnx", [input_name],
                    [f"out{i}" for i in range(outputs)], optimize=optimize)
        expected[stage] = (count_params([module]), executed_macs(module, example))
    return expected, {"size": spec.native_size}


@pytest.mark.slow
def test_student_export_counts_like_torch(tmp_path: Path) -> None:
    expected, info = _export("test_mobilefaceswap", tmp_path, optimize=False)
    card = tmp_path / "student.toml"
    card.write_text(CARD.format(size=info["size"]))
    counted = count_stages(load_card(card))
    for stage in ("identity", "frame"):
        count, _shapes = counted[stage]
        assert (count.params, count.macs) == expected[stage], stage
    # batch-norm statistics are buffers, listed apart as the torch counter leaves them out
    reasons = {v["reason"] for v in counted["identity"][0].excluded.values()}
    assert any("running statistics" in r for r in reasons)


@pytest.mark.slow
def test_optimised_export_keeps_the_macs(tmp_path: Path) -> None:
    """The exact optimiser folds batch norms into convs (fewer params in the deployed graph), but the
    multiply-accumulates it runs are the ones the torch counter counts on the exported module."""
    from mfsbench.cards.graph import count_file

    expected, info = _export("test_mobilefaceswap", tmp_path, optimize=True, stages=("frame",))
    size = info["size"]
    count = count_file(tmp_path / "frame.onnx", {"target": (1, 3, size, size)})
    assert count.macs == expected["frame"][1]
