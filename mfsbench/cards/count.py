"""Table 1 rows of a card: params and MACs counted on its ONNX graphs, per stage and per mode.

The ``frame`` stage is the swapper graph at the card's input shapes, minus the projection initializer
(it is identity work, done once per source). The ``identity`` stage is the encoder graph when the card
names one, plus the projection: a vector-matrix product with the initializer (``K·N`` MACs, ``K·N``
params) or the converter graph. Modes compose the stages as for the zoo: image = identity + frame,
video = frame. Every record carries the card's licence id, files and digests.
"""

from __future__ import annotations

from math import prod
from typing import Any

from mfsbench.cards.graph import GraphCount, count_file, signature
from mfsbench.cards.load import LoadedCard
from mfsbench.errors import MfsbenchError
from mfsbench.records import Record
from mfsbench.registry import ModelSpec, ModeName

COMMAND = "flops"
CONVENTION = "macs"
CONVENTION_NOTE = ("ONNX graph: multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul and Einsum "
                   "(the macs convention); paper-convention FLOPs cannot be read off an exported graph")


def _graph_static(path: Any) -> dict[str, tuple[int, ...]]:
    """A side graph's inputs with a dynamic batch pinned to 1 (converters, encoders)."""
    from mfsbench.cards.wire import load_structure

    inputs, _ = signature(load_structure(path))
    return {i.name: tuple(1 if d < 0 else d for d in i.shape) for i in inputs}


def count_stages(loaded: LoadedCard) -> dict[str, tuple[GraphCount, dict[str, list[int]]]]:
    """Stage name → (count, input shapes) for the card's stages."""
    card = loaded.card
    projection = card.identity.projection
    exclude = list(card.exclude_initializers)
    if projection.kind == "initializer":
        exclude.append("@last" if projection.index == -1 else projection.name or "")
        if projection.index not in (None, -1):
            from mfsbench.cards.wire import load_structure

            exclude.append(load_structure(loaded.swapper_path).graph.initializer[projection.index].name)
    static = loaded.static_inputs()
    frame = count_file(loaded.swapper_path, static, tuple(exclude))
    stages: dict[str, tuple[GraphCount, dict[str, list[int]]]] = {
        "frame": (frame, {k: list(v) for k, v in static.items()})
    }
    if not (card.identity.kind == "embedding" and card.separable):
        return stages
    identity = GraphCount(params=0, macs=0, by_operator={})
    shapes: dict[str, list[int]] = {}
    graphs = []
    if card.identity.encoder in loaded.paths:
        graphs.append(loaded.paths[card.identity.encoder])
    if projection.kind == "onnx":
        graphs.append(loaded.paths[projection.file or ""])
    for path in graphs:
        graph_static = _graph_static(path)
        part = count_file(path, graph_static)
        identity.params += part.params
        identity.macs += part.macs
        for op, macs in part.by_operator.items():
            identity.by_operator[op] = identity.by_operator.get(op, 0) + macs
        identity.excluded.update(part.excluded)
        shapes.update({f"{path.name}:{k}": list(v) for k, v in graph_static.items()})
    if projection.kind == "initializer" and loaded.projection_shape:
        elements = prod(loaded.projection_shape)
        identity.params += elements
        identity.macs += elements  # one embedding (1×K) times the K×N matrix
        identity.by_operator["projection"] = elements
        shapes["embedding"] = [1, loaded.projection_shape[0]]
    stages["identity"] = (identity, shapes)
    return stages


def measure_card(spec: ModelSpec, modes: tuple[ModeName, ...]) -> list[Record]:
    """Stage records then mode records for a card spec (error records if a graph cannot be counted)."""
    loaded = spec.card
    assert loaded is not None, f"{spec.name} is not a card spec"
    info: dict[str, Any] = {
        "display_name": spec.display_name, "family": spec.family, "provenance": spec.provenance,
        "native_size": spec.native_size, "size": spec.native_size, "paper_row": None, "paper_size": None,
        "cited_only": False, "notes": list(spec.notes), "convention_description": CONVENTION_NOTE,
        **loaded.record_info(),
    }
    try:
        stages = count_stages(loaded)
    except (MfsbenchError, ValueError) as exc:
        return [Record(COMMAND, spec.name, mode=mode, convention=CONVENTION, status="error",
                       error=f"counting the card's graph failed: {exc}", info=info) for mode in modes]
    records = []
    for name, (count, shapes) in stages.items():
        records.append(Record(
            command=COMMAND, model=spec.name, stage=name, convention=CONVENTION, input_shapes=shapes,
            metrics={"params": count.params, "params_m": count.params / 1e6, "macs": count.macs,
                     "gmacs": count.macs / 1e9, "matrix_macs": count.macs},
            info={**info, "by_operator": count.by_operator, "unsupported_ops": {},
                  "excluded_initializers": count.excluded, "onnx_nodes": count.nodes,
                  "onnx_opset": count.opset, "stage_description": spec.stage(name).description},  # type: ignore[arg-type]
        ))
    for mode in modes:
        if mode not in spec.modes:
            records.append(Record(COMMAND, spec.name, mode=mode, convention=CONVENTION, status="skipped",
                                  error=f"{spec.name} has no {mode} mode (its identity is not a separate "
                                        "stage)", info=info))
            continue
        used = spec.stages_for(mode)
        params = sum(stages[s][0].params for s in used)
        macs = sum(stages[s][0].macs for s in used)
        records.append(Record(
            command=COMMAND, model=spec.name, mode=mode, convention=CONVENTION,
            input_shapes={f"{s}.{k}": v for s in used for k, v in stages[s][1].items()},
            metrics={"params": params, "params_m": params / 1e6, "params_stored_m": params / 1e6,
                     "macs": macs, "gmacs": macs / 1e9},
            info={**info, "stages": list(used), "paper": {},
                  "params_definition": "elements of the initializers the mode's graphs compute with"},
        ))
    return records
