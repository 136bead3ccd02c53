"""The ONNX export's graph optimiser: the cause of the dropped epsilon, and the parity-checked use.

Cause: onnxscript's no-op rules (``x + 0``, ``x - 0``, ``x · 1``, ``x / 1``; part of the default
rewrite rules that ``torch.onnx.export(optimize=True)`` runs through ``optimize_ir``) compare their
constant with ``math.isclose(c, 0, rel_tol=1e-5, abs_tol=1e-8)``, so ``Add(x, 1e-8)`` and
``Mul(x, 1.000005)`` are removed as no-ops. :func:`mfsbench.export.onnx.optimize_exactly` runs the
same passes with exact no-op rules, and :func:`mfsbench.export.onnx.export_onnx` keeps the optimised
graph only when it matches the unoptimised one and torch; these tests fail if either guard goes.
"""

from __future__ import annotations

import importlib.util
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from baselines.simswap import InstanceNorm  # noqa: E402
from mfsbench.export.onnx import (  # noqa: E402
    OPTIMIZER_EXACTNESS,
    OPTIMIZER_TOLERANCE,
    _tolerant_no_op_rules,
    exact_rewrite_rules,
    export_onnx,
    optimize_exactly,
)


def _binary(op: str, constant: float) -> Any:
    """An onnx_ir model ``y = op(x, c)`` with ``c`` a rank-0 float32 ``Constant`` (as torch writes ε)."""
    import onnx_ir as ir
    from onnx import TensorProto, helper

    value = helper.make_tensor("c", TensorProto.FLOAT, [], [constant])
    const = helper.make_node("Constant", [], ["c"], value=value)
    node = helper.make_node(op, ["x", "c"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([const, node], "g", [x], [y])
    return ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]))


def _ops(model: Any) -> list[str]:
    return [node.op_type for node in model.graph]


def _rewrite(model: Any, rules: list[Any]) -> Any:
    from onnxscript.rewriter import rewrite

    return rewrite(model, pattern_rewrite_rules=rules)


@pytest.mark.parametrize(("op", "constant"),
                         [("Add", 1e-8), ("Sub", 1e-8), ("Mul", 1 + 5e-6), ("Div", 1 + 5e-6)])
def test_cause_onnxscript_no_op_rules_remove_near_identity_constants(op: str, constant: float) -> None:
    from onnxscript import rewriter

    assert op in _ops(_binary(op, constant))
    # the stock default rules, and the tolerant no-op rules alone, delete the op: that is the bug
    assert op not in _ops(_rewrite(_binary(op, constant), list(rewriter._DEFAULT_REWRITE_RULES)))
    assert op not in _ops(_rewrite(_binary(op, constant), _tolerant_no_op_rules()))
    # the rule set optimize_exactly runs keeps it
    assert op in _ops(_rewrite(_binary(op, constant), exact_rewrite_rules()))


@pytest.mark.parametrize(("op", "constant"), [("Add", 0.0), ("Sub", 0.0), ("Mul", 1.0), ("Div", 1.0)])
def test_exact_rules_still_remove_true_no_ops(op: str, constant: float) -> None:
    assert _ops(_rewrite(_binary(op, constant), exact_rewrite_rules())) == ["Identity"]


class RmsScale(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=(2, 3), keepdim=True) + 1e-8)


def _tiny_input() -> Tensor:
    # activations of 1e-4: mean(x²) ≈ 1e-8, so dropping ε changes the output by about 30 %
    return torch.rand(1, 2, 8, 8, generator=torch.Generator().manual_seed(0)) * 2e-4


def _ort(path: Path, x: Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def _has_epsilon(path: Path) -> bool:
    from onnx import numpy_helper

    model = onnx.load(str(path))
    values = [numpy_helper.to_array(t) for t in model.graph.initializer]
    constants = [n for n in model.graph.node if n.op_type == "Constant"]
    values += [numpy_helper.to_array(a.t) for n in constants for a in n.attribute if a.name == "value"]
    return any(v.size == 1 and v.dtype == np.float32 and v.item() == np.float32(1e-8) for v in values)


@pytest.mark.parametrize("module", [RmsScale(), InstanceNorm()], ids=["rms-scale", "simswap-instance-norm"])
def test_stock_optimizer_drops_the_epsilon_and_the_exact_one_keeps_it(module: nn.Module) -> None:
    from onnxscript.optimizer import optimize_ir

    x = _tiny_input()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        stock = torch.onnx.export(module.eval(), (x,), dynamo=True, optimize=False, verbose=False).model
        exact = torch.onnx.export(module.eval(), (x,), dynamo=True, optimize=False, verbose=False).model
    assert "Add" in _ops(stock)
    optimize_ir(stock)
    optimize_exactly(exact)
    assert "Add" not in _ops(stock)
    assert "Add" in _ops(exact)


def test_export_optimises_and_records_what_was_done(tmp_path: Path) -> None:
    x = _tiny_input()
    path = tmp_path / "rms.onnx"
    details = export_onnx(RmsScale(), (x,), path, ["x"], ["y"])
    assert details["optimized"] is True
    assert details["onnx_optimizer"].startswith(f"onnxscript {metadata.version('onnxscript')}: ")
    assert "exact no-op rules" in details["onnx_optimizer"]
    assert len(onnx.load(str(path)).graph.node) == details["nodes_after"] < details["nodes_before"]
    assert details["optimizer_parity_max_abs_err"] <= OPTIMIZER_EXACTNESS
    assert details["optimizer_parity_vs_torch_max_abs_err"] <= OPTIMIZER_TOLERANCE
    assert details["optimizer_parity_runtime"] == "onnxruntime"
    assert _has_epsilon(path)
    with torch.no_grad():
        np.testing.assert_allclose(_ort(path, x), RmsScale()(x).numpy(), rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rms.onnx"]  # no candidate file left


def test_an_optimiser_that_drops_the_epsilon_is_rejected(tmp_path: Path) -> None:
    """The stock optimiser, checked: rejected, and the unoptimised graph (with ε) is written."""
    from onnxscript.optimizer import optimize_ir

    x = _tiny_input()
    path = tmp_path / "rms.onnx"
    details = export_onnx(RmsScale(), (x,), path, ["x"], ["y"], optimizer=optimize_ir)
    assert details["optimized"] is False
    assert "the unoptimised graph was written" in details["optimizer_rejected"]
    assert details["optimizer_parity_vs_torch_max_abs_err"] > 0.05  # what the stock optimiser did
    assert details["onnx_optimizer"].startswith("onnxscript.optimizer._optimizer.optimize_ir")
    assert len(onnx.load(str(path)).graph.node) == details["nodes_before"]
    assert _has_epsilon(path)
    with torch.no_grad():
        np.testing.assert_allclose(_ort(path, x), RmsScale()(x).numpy(), rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rms.onnx"]


def _conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.1),
                         nn.Conv2d(8, 3, 1, bias=False)).eval()


def _nudged(model: Any) -> None:
    """The exact optimiser, then every float weight × (1 + 2e-5): within fp32 parity, not exact."""
    import onnx_ir as ir

    optimize_exactly(model)
    for value in model.graph.initializers.values():
        array = value.const_value.numpy()
        if array.dtype == np.float32 and array.size > 1:
            value.const_value = ir.tensor(array * np.float32(1 + 2e-5), name=value.name)


def test_a_small_silent_change_within_fp32_tolerance_is_still_rejected(tmp_path: Path) -> None:
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    path = tmp_path / "convs.onnx"
    details = export_onnx(_conv_net(), (x,), path, ["x"], ["y"], optimizer=_nudged)
    assert details["optimized"] is False, details
    assert details["optimizer_parity_max_abs_err"] > OPTIMIZER_EXACTNESS
    assert details["optimizer_parity_vs_torch_max_abs_err"] < OPTIMIZER_TOLERANCE  # fp32 parity alone passes
    with torch.no_grad():
        np.testing.assert_allclose(_ort(path, x), _conv_net()(x).numpy(), rtol=1e-5, atol=1e-5)
    # the same net with the real optimiser is accepted: the nudge, not the net, was rejected
    details = export_onnx(_conv_net(), (x,), tmp_path / "ok.onnx", ["x"], ["y"])
    assert details["optimized"] is True, details
    ops = [n.op_type for n in onnx.load(str(tmp_path / "ok.onnx")).graph.node]
    assert "BatchNormalization" not in ops  # folded into the conv: the optimiser did something


def test_an_optimiser_crash_keeps_the_unoptimised_graph(tmp_path: Path) -> None:
    def crash(model: Any) -> None:
        raise RuntimeError("boom")

    x = _tiny_input()
    path = tmp_path / "rms.onnx"
    details = export_onnx(RmsScale(), (x,), path, ["x"], ["y"], optimizer=crash)
    assert details["optimized"] is False
    assert details["optimizer_error"] == "RuntimeError: boom"
    assert _has_epsilon(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rms.onnx"]


def test_without_onnxruntime_nothing_is_optimised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "onnxruntime" else real(name, *a, **k))
    path = tmp_path / "rms.onnx"
    details = export_onnx(RmsScale(), (_tiny_input(),), path, ["x"], ["y"])
    assert details["optimized"] is False
    assert "onnxruntime is not installed" in details["optimizer_skipped"]
    assert len(onnx.load(str(path)).graph.node) == details["nodes_before"]


def test_optimize_false_writes_the_exporters_graph(tmp_path: Path) -> None:
    x = _tiny_input()
    raw, optimised = tmp_path / "raw.onnx", tmp_path / "opt.onnx"
    assert export_onnx(RmsScale(), (x,), raw, ["x"], ["y"], optimize=False) == {"optimized": False}
    details = export_onnx(RmsScale(), (x,), optimised, ["x"], ["y"])
    assert len(onnx.load(str(raw)).graph.node) == details["nodes_before"]
    np.testing.assert_array_equal(_ort(raw, x), _ort(optimised, x))


def test_onnx_exporter_puts_the_details_on_the_artifact(tmp_path: Path) -> None:
    from mfsbench.checkpoints.digest import sha256_file
    from mfsbench.export.base import get_exporter

    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    artifact = get_exporter("onnx").export(_conv_net(), (x,), tmp_path, "fp32", stem="net")
    assert artifact.details["optimized"] is True
    assert artifact.details["nodes_after"] == len(onnx.load(str(artifact.path)).graph.node)
    assert artifact.sha256 == sha256_file(artifact.path)  # the hash is of the file actually written
