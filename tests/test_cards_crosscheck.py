"""The card counter on full-size zoo graphs, against the torch counter and against onnx-tool (issue 17
item 4): the released student's frame stage at 224 and SimSwap's classes (the tiny ``test_simswap``;
the 48-GMAC ``simswap_224`` export takes most of a minute, so ``benchmarks/bench_cards.py`` checks it).

onnx-tool is an independent counter (PyPI onnx-tool 1.0.1, in the dev extra). It counts a Conv's bias
add as one MAC per output element, which the suite's ``macs`` convention does not; without those adds
the two agree to the MAC. It cannot read ``Constant`` nodes (``ConstantNode`` has no value), so they
are turned into initializers first, which changes no MAC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mfsbench.cards.graph import count_file


def export_frame_stage(name: str, folder: Path) -> tuple[Path, tuple[int, ...], int, int]:
    """The frame stage of zoo model ``name`` exported as written (no rewrites): its path, input
    shape, and the torch counter's ``macs`` and parameters on the same module."""
    from mfsbench.counting import count_flops, count_params
    from mfsbench.export.onnx import export_onnx
    from mfsbench.export.stages import stage_module
    from mfsbench.registry import create_model, get_spec

    spec = get_spec(name)
    torch.manual_seed(0)
    model = create_model(name)
    module, example = stage_module(spec, model, "frame", spec.native_size)
    with torch.no_grad():
        result = module(*example)
    outputs = len(result) if isinstance(result, tuple) else 1
    path = folder / f"{name}.onnx"
    export_onnx(module, example, path, ["target"], [f"out{i}" for i in range(outputs)], optimize=False)
    macs = count_flops(module, tuple(example), "macs", cross_check=False).matrix_macs
    return path, tuple(example[0].shape), macs, count_params([module])


def onnx_tool_matrix_macs(path: Path, shape: tuple[int, ...]) -> int:
    """Conv/ConvTranspose/Gemm/MatMul MACs as onnx-tool counts them, less its bias adds."""
    import onnx
    from onnx import helper, numpy_helper

    onnx_tool = pytest.importorskip("onnx_tool")
    model = onnx.load(str(path))
    kept = []
    for node in model.graph.node:
        if node.op_type != "Constant":
            kept.append(node)
            continue
        value = helper.get_attribute_value(node.attribute[0])
        array = numpy_helper.to_array(value) if node.attribute[0].name == "value" else np.array(value)
        model.graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    plain = path.with_name(path.stem + ".no_constants.onnx")
    onnx.save(model, str(plain))
    tool = onnx_tool.Model(str(plain))
    tool.graph.shape_infer({"target": np.zeros(shape, np.float32)})
    tool.graph.profile()
    total = 0
    for node in tool.graph.nodemap.values():
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        macs = node.macs
        total += int(macs[0] if hasattr(macs, "__len__") else macs)
        if node.op_type in ("Conv", "ConvTranspose", "Gemm") and len(node.input) > 2:
            total -= int(np.prod(tool.graph.tensormap[node.output[0]].get_shape()))  # its bias adds
    return total


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilefaceswap_224", "test_simswap"])
def test_card_counter_equals_torch_and_onnx_tool(name: str, tmp_path: Path) -> None:
    path, shape, torch_macs, torch_params = export_frame_stage(name, tmp_path)
    count = count_file(path, {"target": shape})
    assert (count.macs, count.params) == (torch_macs, torch_params)
    if name == "mobilefaceswap_224":
        assert count.macs == 305_722_368  # the student frame stage at 224, as written (audit A2)
    assert onnx_tool_matrix_macs(path, shape) == count.macs
