"""The desktop device sweep: model × runtime × precision → export, parity, timing, one record each.

What is timed is the paper's video-mode unit: the frame stage with one identity injected, holding
seeded random weights or the user's checkpoints (every record says which). The axis is runtime ×
precision (:mod:`mfsbench.device.axis`): a precision is what the kernels compute, and a CPU that
cannot compute it natively gets a ``skipped`` record or a labelled cell, never a silent fallback.

Each cell runs in a fresh process (:mod:`mfsbench.device.cell`) that prepares the exported file
cold, checks parity on held-out real face crops through the very session it then times, reads back
the precision the kernels executed, and measures its own peak RSS. A cell outside tolerance, or
whose runtime ran another precision than asked, is an ``error`` record and is never timed (a fast
wrong model is not a result). A failing cell never stops the sweep: its record says why and the
next cell runs. Efficiency is the matrix MACs of the graph that was exported (after the exact
export rewrites) over p50 × the measured peak of the precision that executed.

Each cell's record is handed to the caller as soon as it exists (``on_record``), so an interrupted
sweep keeps every finished cell, and :func:`resume_point` lets the next command continue the same
run (same run id, so same-run speed ratios still pair) after checking it is timed the same way.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.device.axis import PRECISIONS, RUNTIMES, CellPlan, plan_for
from mfsbench.device.roofline import PeakResult, Peaks
from mfsbench.errors import BadInputError, MfsbenchError
from mfsbench.records import Record, last_run
from mfsbench.registry import ModelSpec, create_model

COMMAND = "device"

#: the seed of random weights when no checkpoint is given (records say "random, seed N")
DEFAULT_SEED = 0


@dataclass(frozen=True)
class SweepSettings:
    """How each cell is measured (timing: see :func:`mfsbench.device.timing.time_runtime`)."""

    threads: int = 2
    warmup: int = 3
    runs: int = 20
    min_seconds: float = 2.0
    max_seconds: float = 30.0
    #: also take a per-operator profile where the runtime has a profiler (separate runs, after timing)
    profile: bool = False
    #: the folder of parity and calibration photos (None: the registry photos)
    faces: str | None = None
    #: the weights every cell runs (random with this seed, or checkpoints by sha256)
    weights: str = f"random, seed {DEFAULT_SEED}"

    @property
    def profile_runs(self) -> int:
        return max(5, min(50, self.runs))

    def describe(self) -> dict[str, Any]:
        """The settings as every record stores them (``info["sweep"]``), so a resume can compare."""
        return asdict(self)

    @staticmethod
    def options(described: dict[str, Any]) -> str:
        """Stored settings as the command-line options that produce them."""
        flags = [f"--{key.replace('_', '-')} {value}" for key, value in described.items()
                 if key not in ("profile", "faces", "weights")]
        flags.append("--profile" if described.get("profile") else "no --profile")
        flags.append(f"--faces {described['faces']}" if described.get("faces") else "no --faces")
        flags.append(f"weights {described.get('weights', 'unknown')}")
        return " ".join(flags)


@dataclass(frozen=True)
class WeightsRef:
    """Which weights a cell runs: seeded random ones, or official checkpoints (``--checkpoint``)."""

    seed: int | None = DEFAULT_SEED
    checkpoints: tuple[str, ...] = ()


def build_frame_stage(
    spec: ModelSpec, size: int, weights: WeightsRef
) -> tuple[nn.Module, tuple[Tensor, ...], str]:
    """The frame stage with one identity injected, its example inputs, and what weights it holds.

    Random weights are drawn under ``weights.seed`` so every run (and every cell process that
    rebuilds the module) holds the same ones; checkpoints are loaded with the swap command's loader
    and described by sha256.
    """
    from mfsbench.export.stages import stage_module

    with torch.random.fork_rng():
        torch.manual_seed(weights.seed if weights.seed is not None else DEFAULT_SEED)
        model = create_model(spec.name)
    described = f"random, seed {weights.seed if weights.seed is not None else DEFAULT_SEED}"
    if weights.checkpoints:
        from mfsbench.swap.checkpoints import load_checkpoints

        loaded = load_checkpoints(spec, model, list(weights.checkpoints))
        described = "; ".join(f"{c.format} sha256 {c.sha256}" + (f" ({c.provenance})" if c.provenance else "")
                              for c in loaded)
    module, example = stage_module(spec, model, "frame", size)
    return module, example, described


def weights_for(spec: ModelSpec, weights: WeightsRef) -> WeightsRef:
    """A weights card's cells run its own files (a cell process rebuilds its architecture with them,
    a phone runs the export of them); any other model runs ``weights``."""
    if spec.weights_card is None:
        return weights
    from mfsbench.cards.weights import weights_flags

    return WeightsRef(seed=None, checkpoints=tuple(weights_flags(spec, weights.checkpoints)))


CellKey = tuple[str, int, str, str]


def cell_key(record: Record) -> CellKey:
    """(model, size, backend, precision): what one desktop cell measures."""
    return (record.model, int(record.info.get("size", 0)), str(record.info.get("backend", "")),
            str(record.info.get("precision", "")))


def pending_cells(
    model: str, size: int, cells: Sequence[tuple[str, str]], done: Collection[CellKey]
) -> list[tuple[str, str]]:
    """The (backend, precision) cells of ``model`` at ``size`` that ``done`` has no record of."""
    return [(b, p) for b, p in cells if (model, size, b, p) not in done]


@dataclass(frozen=True)
class ResumePoint:
    """The last sweep of a record store: its run id, its records, and the peaks it measured."""

    run_id: str
    records: list[Record]

    @property
    def done(self) -> set[CellKey]:
        return {cell_key(r) for r in self.records}

    @property
    def peaks(self) -> Peaks | None:
        """The peaks the sweep measured (as its last cell left them, a re-measured peak included), so
        resumed cells share its efficiency scale."""
        stored = next((r.info["peaks"] for r in reversed(self.records) if r.info.get("peaks")), None)
        return peaks_from_record(stored) if stored else None


def peaks_to_record(peaks: Peaks | dict[str, PeakResult]) -> dict[str, dict[str, Any]]:
    """Peaks as a record stores them: ``{precision: {macs_per_s, method, ...}}``; a precision with no
    peak (no native bf16 here) keeps ``macs_per_s`` None and the reason."""
    stored: dict[str, dict[str, Any]] = {
        precision: {"macs_per_s": peak.macs_per_s, "method": peak.method,
                    "executed_precision": peak.executed_precision, "native": peak.native}
        for precision, peak in peaks.items()
    }
    for precision, why in getattr(peaks, "unavailable", {}).items():
        stored[precision] = {"macs_per_s": None, "reason": why}
    return stored


def peaks_from_record(stored: dict[str, dict[str, Any]]) -> Peaks:
    """:func:`peaks_to_record` read back, for a resumed sweep."""
    found = {precision: PeakResult(float(d["macs_per_s"]), str(d.get("method", "")), precision,
                                   str(d.get("executed_precision", "")), native=bool(d.get("native", True)))
             for precision, d in stored.items() if d.get("macs_per_s")}
    unavailable = {precision: str(d.get("reason", "")) for precision, d in stored.items()
                   if not d.get("macs_per_s")}
    return Peaks(found, unavailable=unavailable)


def resume_point(records: Sequence[Record], settings: SweepSettings, store: Path) -> ResumePoint:
    """The sweep that ``--resume`` continues: the newest desktop run in ``store`` (see :func:`last_run`).

    Raises:
        BadInputError: when the store has no desktop sweep, or its settings differ (naming both).
    """
    run_id, last = last_run(records, COMMAND, what="`mfsbench device` sweep", settings_key="sweep",
                            wanted=settings.describe(), options=SweepSettings.options, store=store)
    return ResumePoint(run_id, last)


def check_choices(runtimes: Sequence[str], precisions: Sequence[str]) -> None:
    """Reject unknown runtimes or precisions before any work, one line each.

    Raises:
        BadInputError: naming the unknown value and the choices.
    """
    for runtime in runtimes:
        if runtime == "openvino-bf16":
            raise BadInputError("openvino-bf16 is gone: ask for --backends openvino --precision bf16 "
                                "(the cell reads back what OpenVINO executed)")
        if runtime not in RUNTIMES:
            raise BadInputError(f"unknown backend {runtime!r}; choose from {', '.join(RUNTIMES)}")
    for precision in precisions:
        if precision not in PRECISIONS:
            raise BadInputError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class FaceSamples:
    """Frame-stage inputs of real aligned face crops, for parity and for int8 calibration.

    ``held_out`` is True when the parity crops come from photos the calibration never saw; int8
    cells with ``held_out`` False are in-sample and their records and the report say so.
    """

    parity: list[tuple[Any, ...]]
    calibration: list[tuple[Any, ...]]
    source: str
    parity_photos: int
    calibration_photos: int
    held_out: bool

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "parity_crops": len(self.parity), "parity_photos": self.parity_photos,
                "calibration_crops": len(self.calibration), "calibration_photos": self.calibration_photos,
                "held_out": self.held_out}

    @property
    def note(self) -> str:
        """One line for records and reports."""
        if self.held_out:
            return (f"{len(self.parity)} aligned crop(s) from {self.parity_photos} photo(s) of "
                    f"{self.source}, "
                    f"held out: int8 calibrated on {len(self.calibration)} crop(s) from "
                    f"{self.calibration_photos} other photo(s)")
        return (f"{len(self.parity)} aligned crop(s) from {self.source}; in-sample: int8 calibrated on the "
                "same crops")


def _photos(faces_dir: Path | None) -> tuple[list[np.ndarray], str]:
    """Photos for parity: ``faces_dir``, else the registry face photos (fetched once into the asset
    cache, as ``mfsbench ffpp-mini`` does), else scikit-image's astronaut (one photo: in-sample)."""
    from mfsbench.faces.detectors import read_image

    if faces_dir is not None:
        paths = sorted(p for p in faces_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        return [read_image(p) for p in paths], f"{faces_dir}"
    try:
        from mfsbench.quality.face_photos import fetch_face_photos

        photos = fetch_face_photos()
    except (RuntimeError, OSError):
        photos = {}
    if len(photos) >= 2:
        paths = sorted({photo.path for photo in photos.values()})
        return [read_image(p) for p in paths], "the registry face photos"
    try:
        from skimage import data
    except ImportError:
        raise BadInputError(
            "no face photos for parity: pass --faces DIR, or pip install scikit-image for its "
            "bundled astronaut photo"
        ) from None
    return [np.ascontiguousarray(data.astronaut()[:, :, ::-1])], "scikit-image astronaut"


def face_sample_sets(spec: ModelSpec, size: int, faces_dir: Path | None, limit: int = 8) -> FaceSamples:
    """Real aligned face crops for ``spec`` at ``size``: parity and calibration sets.

    Each crop is aligned the way the model's swap pipeline aligns, and its mirror image is added.
    With two or more photos holding faces, the photos are split alternately, so int8 is calibrated
    on photos its parity never sees (held out); with one photo both sets are that photo (in-sample).

    Raises:
        BadInputError: when no face can be found in the photos.
    """
    from mfsbench.export.stages import face_crops_per_photo, frame_stage_inputs

    images, source = _photos(faces_dir)
    if spec.card is not None:  # the card's template, size and pixel spec (mfsbench.device.card)
        from mfsbench.device.card import card_crops_per_photo, card_inputs, identity_vector

        crops = card_crops_per_photo(spec, images, limit=limit, mirror=True)
        identity = identity_vector(spec)[0]
    else:
        crops = face_crops_per_photo(spec, size, images, limit=limit, mirror=True)
    per_photo = [c for c in crops if c]
    if not per_photo:
        raise BadInputError(f"no face found in {source}; pass --faces DIR with face photos")

    def tuples(groups: list[list[np.ndarray]]) -> list[tuple[Any, ...]]:
        chosen = [c for group in groups for c in group][:limit]
        if spec.card is not None:
            return card_inputs(spec, chosen, identity)
        return frame_stage_inputs(spec, size, chosen)

    if len(per_photo) == 1:
        both = tuples(per_photo)
        return FaceSamples(both, both, source, 1, 1, held_out=False)
    parity_groups, calibration_groups = per_photo[1::2], per_photo[0::2]
    return FaceSamples(tuples(parity_groups), tuples(calibration_groups), source, len(parity_groups),
                       len(calibration_groups), held_out=True)


def _references(module: nn.Module, samples: Sequence[tuple[Any, ...]]) -> list[list[np.ndarray]]:
    """torch fp32 outputs of ``module`` for each parity sample (what every cell is compared with)."""
    refs = []
    with torch.no_grad():
        for sample in samples:
            arrays = [np.asarray(a, np.float32) for a in sample]
            batched = [torch.from_numpy(a[None] if a.ndim == 3 else a) for a in arrays]
            refs.append([t.detach().numpy().copy() for t in module(*batched)])
    return refs


@dataclass
class ModelUnderTest:
    """One model's frame stage, built once per sweep, and everything its cells share."""

    spec: ModelSpec
    size: int
    weights: WeightsRef
    #: the torch frame stage (None for a model card: its ONNX file is the stage)
    module: nn.Module | None
    example: tuple[Tensor, ...]
    weights_described: str
    samples: FaceSamples
    parity_data: Path
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    macs_executed: int
    gmacs_paper: float
    #: (format, export precision) → the exported artefact: one export serves every runtime running it
    artifacts: dict[tuple[str, str], Any] = field(default_factory=dict)
    #: a model card's ONNX file and its sha256: the fp32 artefact, and the source of derivatives
    card_source: Path | None = None
    card_sha256: str = ""
    #: a card's ONNX artefact path → its MACs by the card counter (each file counted once)
    counted: dict[str, int] = field(default_factory=dict)
    #: what the parity reference is (torch fp32 for the zoo, ONNX Runtime fp32 for a card)
    reference: str = "torch fp32"


def prepare_card(spec: ModelSpec, samples: FaceSamples, work_dir: Path) -> ModelUnderTest:
    """A card's frame stage: its ONNX file, ONNX Runtime fp32 references of it on the parity crops,
    and the card counter's MACs of that graph (see :mod:`mfsbench.device.card`)."""
    from mfsbench.device.card import frame_macs, graph_input_names, ort_references, weights_described
    from mfsbench.device.cell import write_parity_data

    loaded = spec.card
    assert loaded is not None
    names = graph_input_names(spec)
    refs = ort_references(loaded.swapper_path, names, samples.parity)
    work = work_dir / spec.name
    work.mkdir(parents=True, exist_ok=True)
    data = work / "parity.npz"
    write_parity_data(data, [tuple(np.asarray(a, np.float32) for a in s) for s in samples.parity], refs)
    macs = frame_macs(spec)
    return ModelUnderTest(spec, spec.native_size, WeightsRef(seed=None), None, (), weights_described(spec),
                          samples, data, names, tuple(o.name for o in loaded.outputs), macs, macs / 1e9,
                          card_source=loaded.swapper_path, card_sha256=loaded.graph_sha256,
                          reference="onnxruntime fp32 on the card's original file")


def prepare_model(spec: ModelSpec, size: int, weights: WeightsRef, samples: FaceSamples,
                  work_dir: Path) -> ModelUnderTest:
    """Build the stage, count its MACs, and write the parity data every cell process reads."""
    from mfsbench.device.cell import write_parity_data
    from mfsbench.device.macs import stage_macs
    from mfsbench.export.stages import stage_input_names

    module, example, described = build_frame_stage(spec, size, weights)
    input_names = stage_input_names(spec, "frame")
    refs = _references(module, samples.parity)
    work = work_dir / spec.name
    work.mkdir(parents=True, exist_ok=True)
    data = work / "parity.npz"
    write_parity_data(data, [tuple(np.asarray(a, np.float32) for a in s) for s in samples.parity], refs)
    counts = stage_macs(module, example)  # paper FLOPs as written, matrix MACs as exported
    return ModelUnderTest(spec, size, weights, module, example, described, samples, data, input_names,
                          tuple(f"output_{i}" for i in range(len(refs[0]))), counts.executed_macs,
                          counts.paper_flops / 1e9)


def measure_model(
    spec: ModelSpec,
    size: int,
    *,
    cells: Sequence[tuple[str, str]],
    settings: SweepSettings,
    work_dir: Path,
    samples: FaceSamples,
    weights: WeightsRef | None = None,
    peaks: Peaks | None = None,
    peak_seconds: float = 2.0,
    isa: Collection[str] | None = None,
    done: Collection[CellKey] = (),
    on_record: Callable[[Record], None] | None = None,
) -> list[Record]:
    """Every (runtime, precision) cell of one model; returns one record per cell measured.

    Cells in ``done`` (a resumed sweep's) are left out. ``on_record`` gets each record as soon as
    its cell is finished, so that the caller can store it before the next cell starts. ``isa`` is
    the CPU's feature list (None: read from this machine).
    """
    from mfsbench.records import cpu_isa

    todo = pending_cells(spec.name, size, cells, done)
    if not todo:
        return []
    isa = cpu_isa() if isa is None else isa
    model = (prepare_card(spec, samples, work_dir) if spec.card is not None
             else prepare_model(spec, size, weights_for(spec, weights or WeightsRef()), samples, work_dir))
    base_info: dict[str, Any] = {
        "display_name": spec.display_name, "size": size, "stage": "frame",
        "weights": model.weights_described, "parity_inputs": samples.note,
        "parity_crops": samples.describe(), "gmacs_paper": model.gmacs_paper,
        "macs_executed": model.macs_executed, "peaks": peaks_to_record(peaks) if peaks else None,
        "sweep": settings.describe(), "parity_reference": model.reference,
        **(_card_info(spec) if spec.card is not None else spec.card_record_info()),
    }
    shapes = ({k: list(v) for k, v in spec.card.static_inputs().items()} if spec.card is not None
              else {"target": [1, 3, size, size]})
    records: list[Record] = []
    try:
        for runtime, precision in todo:
            info = {**base_info, "backend": runtime, "precision": precision}
            record = Record(COMMAND, spec.name, stage="frame", mode="video", convention="macs",
                            input_shapes=shapes, info=info)
            plan = _card_plan(plan_for(runtime, precision)) if spec.card else plan_for(runtime, precision)
            if isinstance(plan, str):
                record.status, record.error = "skipped", plan
            else:
                reason = plan.native_reason(isa)
                record.info["compute"] = plan.compute
                record.info["native"] = reason is None
                if reason is not None and plan.fallback == "skip":
                    record.status, record.error = "skipped", f"{reason}; not run, never a silent fallback"
                else:
                    if reason is not None:
                        record.info["native_note"] = reason
                    try:
                        _measure_cell(record, model, plan=plan, backend=runtime, settings=settings,
                                      work_dir=work_dir, peaks=peaks, peak_seconds=peak_seconds)
                    except MfsbenchError as exc:
                        record.status, record.error = "error", str(exc)
                    except Exception as exc:
                        record.status, record.error = "error", f"{type(exc).__name__}: {exc}".splitlines()[0]
            records.append(record)
            if on_record is not None:
                on_record(record)
    finally:
        del model
        gc.collect()
    return records


def _card_info(spec: ModelSpec) -> dict[str, Any]:
    """What every record of a card's cells carries beside the zoo's fields: licence, files and
    digests, where the MACs come from, and what fed the identity input."""
    from mfsbench.device.card import identity_vector

    assert spec.card is not None
    return {
        **spec.card.record_info(),
        "gmacs_paper": None,  # no paper convention for a user's graph
        "macs_source": (f"card counter (mfsbench.cards.count) on {spec.card.swapper_path.name}, the graph "
                        "every cell's file is (or is derived from)"),
        "identity_input": identity_vector(spec)[1],
        "whole_graph": not spec.card.card.separable,
    }


def _card_plan(plan: CellPlan | str) -> CellPlan | str:
    """A zoo plan as a card cell runs it, or why a card has no such cell."""
    from mfsbench.export.card import DERIVATIVES, no_tflite_reason

    if isinstance(plan, str):
        return plan
    if plan.export_format is None:
        return f"{plan.runtime} runs torch modules; a model card is an ONNX graph with no torch module"
    if plan.export_format == "tflite":
        reason = no_tflite_reason()  # the cards-tflite extra (onnx2tf + TensorFlow) converts the ONNX file
        if reason is not None:
            return f"no LiteRT cell for a card: {reason}"
    if plan.export_precision != "fp32" and (plan.export_format, plan.export_precision) not in DERIVATIVES:
        return f"a card's ONNX file has no {plan.export_format} {plan.export_precision} derivative"
    return plan


def _artifact(model: ModelUnderTest, plan: CellPlan, work_dir: Path) -> Any:
    """The exported file a plan runs, exported once per (format, export precision); for a card, its
    own file or a derivative in the per-user cache (:mod:`mfsbench.export.card`)."""
    from mfsbench.export.base import get_exporter

    assert plan.export_format is not None
    key = (plan.export_format, plan.export_precision)
    if key not in model.artifacts and model.card_source is not None:
        from mfsbench.export.card import card_artifact

        assert model.spec.card is not None
        static = model.spec.card.static_inputs()
        model.artifacts[key] = card_artifact(
            model.card_source, model.card_sha256, plan.export_format, plan.export_precision,
            input_names=model.input_names, output_names=model.output_names,
            calibration=model.samples.calibration if plan.export_precision == "int8" else None,
            input_shapes={name: static[name] for name in model.input_names})
    if key not in model.artifacts:
        assert model.module is not None
        calibration = model.samples.calibration if plan.export_precision == "int8" else None
        model.artifacts[key] = get_exporter(plan.export_format).export(
            model.module, model.example, work_dir / model.spec.name, plan.export_precision,
            input_names=model.input_names, calibration=calibration,
            stem=f"{model.spec.name}_{plan.export_format}_{plan.export_precision}",
        )
    return model.artifacts[key]


def _measure_cell(
    record: Record,
    model: ModelUnderTest,
    *,
    plan: CellPlan,
    backend: str,
    settings: SweepSettings,
    work_dir: Path,
    peaks: Peaks | None,
    peak_seconds: float = 2.0,
) -> None:
    """Export (cached), then measure the cell in its own process (:mod:`mfsbench.device.cell`)."""
    from mfsbench.device.cell import CellJob, run_cell

    artifact = None
    fmt = plan.export_format or "module"
    if plan.export_format is not None:
        artifact = _artifact(model, plan, work_dir)
        record.info.update({"format": fmt, "artifact_sha256": artifact.sha256,
                            "artifact_mb": artifact.size_mb, "export": dict(artifact.details)})
    data, input_names, output_names = model.parity_data, model.input_names, model.output_names
    if artifact is not None and "layout" in artifact.details:  # a card's TFLite file: its own layout
        data = _parity_in_file_layout(model, artifact, work_dir)
        input_names, output_names = artifact.input_names, artifact.output_names
        record.info["io_layout"] = {
            **{i["file"]: f"{i['layout']} {i['file_shape']} (ONNX {i['onnx']} {i['onnx_shape']})"
               for i in artifact.details["layout"]["inputs"]},
            **{o["file"]: f"{o['layout']} {o['file_shape']} (ONNX output {o['onnx_index']} {o['onnx_shape']})"
               for o in artifact.details["layout"]["outputs"]}}
        record.info["parity_layout"] = ("inputs fed and outputs compared in the file's own layout (the "
                                        "reference transposed once, outside the timed runs)")
    # judged by what the numbers went through: fp16 storage of f32 compute is judged as fp16
    tolerance = "fp16" if plan.export_precision == "fp16" and plan.compute == "fp32" else plan.compute
    job = CellJob(
        runtime=backend, compute=plan.compute, tolerance=tolerance,
        artifact=str(artifact.path) if artifact is not None else None,
        torch_stage=None if artifact is not None else {
            "model": model.spec.architecture, "size": model.size, "seed": model.weights.seed,
            "checkpoints": list(model.weights.checkpoints)},
        data=str(data), input_names=list(input_names),
        output_names=list(output_names), samples=len(model.samples.parity),
        threads=settings.threads, warmup=settings.warmup, runs=settings.runs,
        min_seconds=settings.min_seconds, max_seconds=settings.max_seconds, profile=settings.profile,
        profile_runs=settings.profile_runs, format=fmt, reference=model.reference,
    )
    outcome = run_cell(job, work_dir / "cells")
    record.metrics.update(outcome.metrics)
    record.info["runtime_info"] = outcome.runtime_info
    record.info["parity_runtime"] = outcome.parity.get("runtime")
    record.info["parity_tolerance"] = tolerance
    record.info["cell_process"] = "fresh process per cell: init and first run cold, peak RSS of this cell"
    for key in ("executed_precision", "op_precisions", "precision_source"):
        if key in outcome.runtime_info:
            record.info[key] = outcome.runtime_info[key]
    if outcome.samples_ms:
        record.info["samples_ms"] = outcome.samples_ms
    if outcome.op_profile is not None:
        record.info["op_profile"] = outcome.op_profile
    if outcome.op_profile_error:
        record.info["op_profile_error"] = outcome.op_profile_error
    if outcome.status != "ok":
        record.status, record.error = "error", outcome.error
        return
    if model.card_source is not None and artifact is not None:
        record.info["macs_executed"], record.info["macs_source"] = _card_cell_macs(model, artifact)
    record.metrics["gmacs"] = int(record.info.get("macs_executed", model.macs_executed)) / 1e9
    _efficiency(record, model, label=f"{model.spec.name} / {backend} / {plan.precision}", peaks=peaks,
                threads=settings.threads, peak_seconds=peak_seconds)
    record.info["peaks"] = peaks_to_record(peaks) if peaks else None


def _parity_in_file_layout(model: ModelUnderTest, artifact: Any, work_dir: Path) -> Path:
    """The card's parity samples and ONNX Runtime references rewritten in a converted TFLite file's
    input/output order and layout (onnx2tf's NHWC), so the cell feeds what the file takes and times
    no transposes; written once per file."""
    from mfsbench.device.cell import write_parity_data
    from mfsbench.export.card_tflite import inputs_in_file_order, outputs_in_file_order

    path = work_dir / model.spec.name / f"parity_{artifact.sha256[:16]}.npz"
    if path.is_file():
        return path
    layout = artifact.details["layout"]
    count = len(model.samples.parity)
    with np.load(model.parity_data) as stored:
        outputs = len([k for k in stored.files if k.startswith("ref_0_")])
        inputs = [inputs_in_file_order([stored[f"in_{i}_{j}"] for j in range(len(model.input_names))],
                                       model.input_names, layout) for i in range(count)]
        refs = [outputs_in_file_order([stored[f"ref_{i}_{k}"] for k in range(outputs)], layout)
                for i in range(count)]
    write_parity_data(path, inputs, refs)
    return path


def _card_cell_macs(model: ModelUnderTest, artifact: Any) -> tuple[int, str]:
    """MACs of the graph a card cell ran, by the card counter: the ONNX file itself (the card's, or its
    QDQ derivative); an OpenVINO IR cannot be read by it, so the ONNX file it was converted from."""
    from mfsbench.cards.graph import count_file

    assert model.spec.card is not None
    path = Path(artifact.path)
    if path.suffix != ".onnx":
        return model.macs_executed, (f"card counter (mfsbench.cards.count) on {model.card_source}, the ONNX "
                                     f"file the {artifact.format} file was converted from")
    if str(path) not in model.counted:  # a 550 MB graph takes seconds: once per file
        model.counted[str(path)] = count_file(path, model.spec.card.static_inputs()).macs
    return model.counted[str(path)], f"card counter (mfsbench.cards.graph.count_file) on {path}, which ran"


def _efficiency(record: Record, model: ModelUnderTest, *, label: str, peaks: Peaks | None, threads: int,
                peak_seconds: float) -> None:
    """Efficiency at p50 and at the fastest run against the peak of the executed precision.

    A cell faster than the peak says the peak was measured in a contended moment of a shared
    machine, or that something is wrong. The peak of that precision is measured once more right
    away (the machine is as quiet as the cell just proved it to be): when it is higher it replaces
    the sweep's peak (``peaks`` is updated, so later cells use it; the record says so), and only a
    cell still above 1 against the fresh peak is an error (:class:`PhysicalLimitError`), never a note.
    """
    from mfsbench.device.roofline import (
        PhysicalLimitError,
        best_efficiency,
        efficiency,
        measure_peaks,
        no_peak_reason,
        peak_for,
    )

    executed = str(record.info.get("executed_precision"))
    peak = peak_for(executed, peaks or {})
    if peak is None or peaks is None:
        record.info["efficiency_note"] = no_peak_reason(executed, peaks or {})
        return
    macs = int(record.info.get("macs_executed", model.macs_executed))

    def fractions(against: PeakResult) -> dict[str, float]:
        found = {"efficiency": efficiency(macs, record.metrics["p50_ms"], against, label=label)}
        if "min_ms" in record.metrics:
            found["efficiency_best"] = best_efficiency(macs, record.metrics["min_ms"], against, label=label)
        return found

    try:
        try:
            found = fractions(peak)
        except PhysicalLimitError:
            again = measure_peaks(threads=threads, precisions=(peak.precision,), min_seconds=peak_seconds)
            fresh = again.get(peak.precision)
            if fresh is None or fresh.macs_per_s <= peak.macs_per_s:
                raise
            record.info["peak_remeasured"] = {"was": peak.macs_per_s, "now": fresh.macs_per_s,
                                              "why": "this cell ran faster than the sweep's peak"}
            peaks[peak.precision] = peak = fresh
            found = fractions(peak)
    except PhysicalLimitError as exc:  # a ratio above its physical limit is a bug, never a note
        record.status, record.error = "error", str(exc)
        return
    record.metrics.update(found)
    record.info["peak_precision"] = peak.precision
