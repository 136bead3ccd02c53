"""Turn stage and mode counts into records: the body of ``mfsbench flops``.

Per model it emits one record per stage (what each stage costs at its own inputs) and one per mode
(the composition the paper's columns report), each carrying the paper's figure for that cell, so a
renderer never has to look anything up. Cited-only rows become ``skipped`` records that carry the
paper's figures and say why nothing was measured.
"""

from __future__ import annotations

from dataclasses import asdict

from mfsbench.complexity import compose_modes, count_spec
from mfsbench.conventions import CONVENTION_DESCRIPTIONS, Convention
from mfsbench.errors import MfsbenchError
from mfsbench.records import Record
from mfsbench.registry import ModelSpec, ModeName, PaperReference

COMMAND = "flops"


def _paper_cell(reference: PaperReference | None, mode: ModeName) -> dict[str, float]:
    if reference is None:
        return {}
    params = reference.image_params_m if mode == "image" else reference.video_params_m
    flops = reference.image_gflops if mode == "image" else reference.video_gflops
    cell = {}
    if params is not None:
        cell["params_m"] = params
    if flops is not None:
        cell["gflops"] = flops
    return cell


def _spec_info(spec: ModelSpec, size: int) -> dict[str, object]:
    return {
        "display_name": spec.display_name,
        "family": spec.family,
        "provenance": spec.provenance,
        "native_size": spec.native_size,
        "size": size,
        "paper_row": spec.reference.row if spec.reference else None,
        "paper_size": spec.reference.size if spec.reference else None,
        "cited_only": bool(spec.reference and spec.reference.cited_only),
        "notes": list(spec.notes),
    }


def cited_records(spec: ModelSpec, modes: tuple[ModeName, ...]) -> list[Record]:
    """Rows that exist only as the paper's figures: one skipped record per mode, figures attached."""
    info = _spec_info(spec, spec.reference.size if spec.reference else spec.native_size)
    return [
        Record(
            command=COMMAND,
            model=spec.name,
            mode=mode,
            status="skipped",
            error="cited only: no public architecture exists, so nothing can be measured",
            info={**info, "paper": _paper_cell(spec.reference, mode)},
        )
        for mode in modes
    ]


def measure(
    spec: ModelSpec,
    size: int,
    convention: Convention,
    modes: tuple[ModeName, ...],
    *,
    cross_check: bool = True,
) -> list[Record]:
    """Count ``spec`` at ``size``; returns stage records then mode records (or error records)."""
    if not spec.runnable:
        return cited_records(spec, modes)
    info = _spec_info(spec, size)
    try:
        stages = count_spec(spec, size, convention, cross_check=cross_check)
    except MfsbenchError as exc:
        return [
            Record(
                COMMAND,
                spec.name,
                mode=mode,
                convention=convention,
                status="error",
                error=str(exc),
                info=info,
            )
            for mode in modes
        ]
    records: list[Record] = []
    for name, count in stages.items():
        flops = count.flops
        records.append(
            Record(
                command=COMMAND,
                model=spec.name,
                stage=name,
                metrics={
                    "params": count.params,
                    "params_m": count.params / 1e6,
                    "macs": flops.flops,
                    "gmacs": flops.flops / 1e9,
                    "matrix_macs": flops.matrix_macs,
                    "torch_matrix_macs": flops.torch_matrix_macs or 0,
                },
                convention=convention,
                input_shapes={k: list(v) for k, v in count.input_shapes.items()},
                info={
                    **info,
                    "by_operator": flops.by_operator,
                    "unsupported_ops": flops.unsupported_ops,
                    "cross_check_rel_diff": flops.cross_check_rel_diff,
                    "stage_description": spec.stage(name).description,
                },
            )
        )
    for mode, composed in compose_modes(spec, stages).items():
        if mode not in modes:
            continue
        shapes = {
            f"{stage}.{k}": list(v)
            for stage in composed.stages
            for k, v in stages[stage].input_shapes.items()
        }
        records.append(
            Record(
                command=COMMAND,
                model=spec.name,
                mode=mode,
                metrics={
                    "params": composed.params,
                    "params_m": composed.params / 1e6,
                    "params_stored_m": composed.params_stored / 1e6,
                    "macs": composed.flops,
                    "gmacs": composed.flops / 1e9,
                },
                convention=convention,
                input_shapes=shapes,
                info={
                    **info,
                    "stages": list(composed.stages),
                    "params_definition": composed.params_definition,
                    "convention_description": CONVENTION_DESCRIPTIONS[convention],
                    "paper": _paper_cell(spec.reference, mode),
                    "composition": asdict(composed),
                },
            )
        )
    for mode in modes:
        if mode not in spec.modes:
            records.append(
                Record(
                    COMMAND,
                    spec.name,
                    mode=mode,
                    convention=convention,
                    status="skipped",
                    error=f"{spec.name} has no {mode} mode (it has no frame stage)",
                    info=info,
                )
            )
    return records
