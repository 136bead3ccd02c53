"""What an ONNX graph takes, gives, needs and costs: I/O signature, operator check, params and MACs.

Counting follows the suite's ``macs`` convention (:mod:`mfsbench.counting`): multiply-accumulates of
convolution, transposed convolution, Gemm, MatMul and Einsum only; norms, resizes and pools cost 0.
The formulas are the ones the torch counter uses, so a zoo stage exported to ONNX counts exactly what
:func:`mfsbench.device.macs.executed_macs` counts on the module it was exported from (a test checks
it). Paper-convention FLOPs cannot be read off an ONNX graph (exporters fold and rename the ops those
rules charge), so a card's Table 1 row is always in the ``macs`` convention, and says so.

Parameters are the elements of the initializers that nodes consume, each counted once. Three kinds
are listed apart instead: initializers no node reads (inswapper's ``emap``, a projection the caller
applies), batch-norm running statistics (buffers, not parameters, as in the torch counter) and the
initializers a card names in ``complexity.exclude_initializers``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

#: Domains whose operators ONNX Runtime's CPU build implements (standard, ML and Microsoft contrib).
KNOWN_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")
COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum")
_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: name, shape (``-1`` for a dynamic or symbolic dimension), dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass
class GraphCount:
    """Params and MACs of one graph at static input shapes."""

    params: int
    macs: int
    by_operator: dict[str, int]
    excluded: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: int = 0
    opset: int = 0


def _dtype(elem_type: int) -> str:
    import onnx

    return _FLOAT_TYPES.get(elem_type) or onnx.helper.tensor_dtype_to_np_dtype(elem_type).name


def _value_info(value: Any) -> TensorInfo:
    tensor = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return TensorInfo(value.name, dims, _dtype(tensor.elem_type))


def signature(model: Any) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Graph inputs (initializers listed as inputs by old exporters left out) and outputs."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_value_info(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [_value_info(v) for v in model.graph.output]


def unknown_ops(model: Any) -> list[str]:
    """``domain::op`` of every node type ONNX Runtime cannot run (a custom op needs its library).

    A model-local function defines its own op, so those are fine; a standard-domain op that the
    installed ``onnx`` does not define (a typo, a future opset) is reported too.
    """
    import onnx

    local = {(f.domain, f.name) for f in model.functions}
    missing: set[str] = set()
    for node in _all_nodes(model.graph):
        key = (node.domain, node.op_type)
        if key in local:
            continue
        if node.domain not in KNOWN_DOMAINS:
            missing.add(f"{node.domain}::{node.op_type}")
        elif node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
            missing.add(f"ai.onnx::{node.op_type}")
    return sorted(missing)


def _all_nodes(graph: Any) -> list[Any]:
    """Nodes of ``graph`` and of every subgraph (If/Loop/Scan bodies)."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attribute in node.attribute:
            if attribute.HasField("g"):
                nodes += _all_nodes(attribute.g)
            for sub in attribute.graphs:
                nodes += _all_nodes(sub)
    return nodes


def opset_of(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _inference_model(model: Any, static: dict[str, tuple[int, ...]]) -> Any:
    """A copy for shape inference: static input dims, weight-less initializers turned into inputs."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    for value in graph.input:
        if value.name in static:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, static[value.name], strict=False):
                dim.Clear()
                dim.dim_value = size
    kept = []
    for init in graph.initializer:
        has_data = bool(init.raw_data or init.float_data or init.int64_data or init.int32_data
                        or init.double_data or init.uint64_data or not prod(init.dims))
        if has_data:
            kept.append(init)
        else:
            graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return copy


def infer_shapes(model: Any, static: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Every tensor's static shape (name → dims) with the graph inputs pinned to ``static``."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(_inference_model(model, static), data_prop=True)
    shapes: dict[str, tuple[int, ...]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        info = _value_info(value)
        if value.type.tensor_type.HasField("shape"):
            shapes[info.name] = info.shape
    for init in model.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


class CountError(ValueError):
    """A node whose MACs cannot be computed (shapes unknown after inference)."""


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def node_macs(node: Any, shapes: dict[str, tuple[int, ...]]) -> int:
    """MACs of one counted node (the torch counter's formulas; see the module docstring)."""

    def shape(name: str) -> tuple[int, ...]:
        dims = shapes.get(name)
        if dims is None or any(d < 0 for d in dims):
            raise CountError(f"{node.op_type} node {node.name or '?'}: the shape of {name!r} is unknown "
                             f"({dims}); give static input shapes in the card's [io]")
        return dims

    if node.op_type == "Conv":
        x, w, y = shape(node.input[0]), shape(node.input[1]), shape(node.output[0])
        return x[0] * prod(y[2:]) * prod(w)
    if node.op_type == "ConvTranspose":  # weight (Cin, Cout/groups, k...): each input pixel scatters
        x, w = shape(node.input[0]), shape(node.input[1])
        return x[0] * prod(x[2:]) * w[0] * prod(w[1:])
    if node.op_type == "Gemm":
        a, b = shape(node.input[0]), shape(node.input[1])
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return m * k * n
    if node.op_type == "MatMul":
        a, b, y = shape(node.input[0]), shape(node.input[1]), shape(node.output[0])
        k = a[-1]
        return prod(y) * k
    if node.op_type == "Einsum":
        return _einsum_macs(_attr(node, "equation", b"").decode(), [shape(i) for i in node.input])
    return 0


def _einsum_macs(equation: str, operands: list[tuple[int, ...]]) -> int:
    """Multiply-adds of numpy's optimal contraction order, from shapes only (fvcore's einsum rule:
    numpy counts 2 per multiply-add of a contraction)."""
    import numpy as np

    views = [np.broadcast_to(np.zeros((), np.float32), s) for s in operands]
    report = np.einsum_path(equation, *views, optimize="optimal")[1]
    flops = next(line for line in report.splitlines() if "Optimized FLOP count" in line)
    return round(float(flops.split(":")[1]) / 2)


def _roles(nodes: list[Any]) -> dict[str, set[str]]:
    """For each tensor name, the roles nodes read it in: ``stat`` (batch-norm mean/var),
    ``bias`` (input 2 of Conv/ConvTranspose/Gemm) or ``other``."""
    roles: dict[str, set[str]] = {}
    for node in nodes:
        for position, name in enumerate(node.input):
            if node.op_type == "BatchNormalization" and position in (3, 4):
                role = "stat"
            elif node.op_type in ("Conv", "ConvTranspose", "Gemm") and position == 2:
                role = "bias"
            else:
                role = "other"
            roles.setdefault(name, set()).add(role)
    return roles


def _all_zero(init: Any) -> bool:
    """Whether an initializer kept its (small) data and every element is 0."""
    import numpy as np
    import onnx

    has_data = bool(init.raw_data or init.float_data or init.int32_data or init.int64_data
                    or init.double_data)
    return has_data and not np.any(onnx.numpy_helper.to_array(init))


def count_graph(model: Any, static: dict[str, tuple[int, ...]],
                exclude: tuple[str, ...] = ()) -> GraphCount:
    """Params and MACs of ``model`` with inputs pinned to ``static`` (name → dims).

    ``exclude`` names initializers that are not compute; ``"@last"`` is the last initializer.

    Raises:
        CountError: a counted node whose shapes stay unknown.
    """
    shapes = infer_shapes(model, static)
    by_operator: Counter[str] = Counter()
    nodes = _all_nodes(model.graph)
    for node in nodes:
        if node.op_type in COUNTED_OPS and node.domain in ("", "ai.onnx"):
            by_operator[node.op_type] += node_macs(node, shapes)
    roles = _roles(nodes)
    initializers = list(model.graph.initializer)
    named = {initializers[-1].name if x == "@last" and initializers else x for x in exclude}
    params = 0
    excluded: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for init in initializers:
        if init.name in seen:
            continue
        seen.add(init.name)
        size = prod(init.dims)
        role = roles.get(init.name, set())
        reason = ("named in the card's complexity.exclude_initializers" if init.name in named
                  else "integer or scalar constant (shapes, indices, epsilons)"
                  if init.data_type not in _FLOAT_TYPES or not init.dims
                  else "read by no node (a projection applied outside the graph)" if not role
                  else "batch-norm running statistics (buffers, not parameters)" if role == {"stat"}
                  else "all-zero bias (adds nothing; exporters write one for bias-free convs)"
                  if role == {"bias"} and _all_zero(init) else None)
        if reason is None:
            params += size
        else:
            excluded[init.name] = {"shape": list(init.dims), "elements": size, "reason": reason}
    return GraphCount(params=params, macs=sum(by_operator.values()), by_operator=dict(by_operator),
                      excluded=excluded, nodes=len(nodes), opset=opset_of(model))


def count_file(path: Path, static: dict[str, tuple[int, ...]], exclude: tuple[str, ...] = ()) -> GraphCount:
    """:func:`count_graph` of a file read without its weights (:func:`mfsbench.cards.wire.load_structure`)."""
    from mfsbench.cards.wire import load_structure

    return count_graph(load_structure(path), static, exclude)
