"""The desktop device sweep: model × backend × precision → export, parity, timing, one record each.

What is timed is the paper's video-mode unit: the frame stage with one identity injected. Every
exported cell is first compared with torch on real aligned face crops; a cell outside tolerance
becomes an ``error`` record and is never timed (a fast wrong model is not a result). A failing cell
never stops the sweep: its record says why and the next cell runs.

Each cell's record is handed to the caller as soon as it exists (``on_record``), so an interrupted
sweep keeps every finished cell, and :func:`resume_point` lets the next command continue the same
run (same run id, so same-run speed ratios still pair) after checking it is timed the same way.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mfsbench.counting import count_flops
from mfsbench.errors import BadInputError, MfsbenchError
from mfsbench.records import Record, last_run
from mfsbench.registry import ModelSpec, create_model
from mfsbench.device.roofline import PeakResult, efficiency

COMMAND = "device"

#: backend → the export format it runs (None: the torch module itself).
BACKEND_FORMAT: dict[str, str | None] = {
    "torch-eager": None,
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "openvino-bf16": "openvino",
    "litert": "tflite",
    # OpenVINO's own tool on the same f32 IR: a cross-check of this harness, never in the default
    # sweep (its statistics are median/avg/min/max only; no raw samples to recompute from)
    "benchmark_app": "openvino",
}
#: precisions each backend can run from our exporters.
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch-eager": ("fp32",),
    "onnxruntime": ("fp32",),
    "openvino": ("fp32", "fp16"),
    "openvino-bf16": ("fp32",),
    "litert": ("fp32", "fp16", "int8"),
    "benchmark_app": ("fp32",),
}


#: precisions timed when none are asked for: fp32 everywhere, plus int8 where an int8 export runs
#: (the student's int8 target, ≥ 250 FPS at ≥ 30 dB, is part of the default sweep).
DEFAULT_PRECISIONS: tuple[str, ...] = ("fp32", "int8")


def default_cells(backends: Sequence[str], precisions: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(backend, precision) cells of a sweep.

    With ``precisions`` given, every backend × precision (cells a backend cannot run become
    ``skipped`` records, so an explicit request is never silently dropped). Without, each backend
    gets the :data:`DEFAULT_PRECISIONS` it can run: fp32 for all, int8 for LiteRT.
    """
    if precisions:
        return [(b, p) for b in backends for p in precisions]
    return [(b, p) for b in backends for p in DEFAULT_PRECISIONS if p in BACKEND_PRECISIONS.get(b, ())]


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
                 if key not in ("profile", "faces")]
        flags.append("--profile" if described.get("profile") else "no --profile")
        flags.append(f"--faces {described['faces']}" if described.get("faces") else "no --faces")
        return " ".join(flags)


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
    """The last sweep of a record store: its run id, its records, and the peak it measured."""

    run_id: str
    records: list[Record]

    @property
    def done(self) -> set[CellKey]:
        return {cell_key(r) for r in self.records}

    @property
    def peak(self) -> PeakResult | None:
        """The peak the sweep measured, so resumed cells share its efficiency scale."""
        info = self.records[0].info
        if not info.get("peak_macs_per_s"):
            return None
        return PeakResult(info["peak_macs_per_s"], info.get("peak_method") or "as stored by the resumed run")


def resume_point(records: Sequence[Record], settings: SweepSettings, store: Path) -> ResumePoint:
    """The sweep that ``--resume`` continues: the newest desktop run in ``store`` (see :func:`last_run`).

    Raises:
        BadInputError: when the store has no desktop sweep, or its settings differ (naming both).
    """
    run_id, last = last_run(records, COMMAND, what="`mfsbench device` sweep", settings_key="sweep",
                            wanted=settings.describe(), options=SweepSettings.options, store=store)
    return ResumePoint(run_id, last)


def check_choices(backends: Sequence[str], precisions: Sequence[str]) -> None:
    """Reject unknown backends or precisions before any work, one line each.

    Raises:
        BadInputError: naming the unknown value and the choices.
    """
    for backend in backends:
        if backend not in BACKEND_FORMAT:
            raise BadInputError(f"unknown backend {backend!r}; choose from {', '.join(BACKEND_FORMAT)}")
    for precision in precisions:
        if precision not in ("fp32", "fp16", "int8"):
            raise BadInputError(f"unknown precision {precision!r}; choose from fp32, fp16, int8")


def _photos(faces_dir: Path | None) -> tuple[list[np.ndarray], str]:
    from mfsbench.faces.detectors import read_image

    if faces_dir is not None:
        paths = sorted(p for p in faces_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        return [read_image(p) for p in paths], f"{len(paths)} photo(s) in {faces_dir}"
    try:
        from skimage import data
    except ImportError:
        raise BadInputError(
            "no face photos for parity: pass --faces DIR, or pip install scikit-image for its "
            "bundled astronaut photo"
        ) from None
    return [np.ascontiguousarray(data.astronaut()[:, :, ::-1])], "scikit-image astronaut"


def face_sample_sets(
    spec: ModelSpec, size: int, faces_dir: Path | None, limit: int = 8
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], str]:
    """``(parity, calibration, note)``: frame-stage input tuples of real aligned face crops.

    Faces come from ``faces_dir`` (any photos), else from scikit-image's bundled astronaut photo,
    so the default needs no download. Each crop is aligned the way the model's swap pipeline
    aligns, and its mirror image is added. With two or more photos holding faces, the photos are
    split alternately, so int8 is calibrated on photos its parity never sees (a held-out check);
    with one photo both sets are that photo, and the note says so.

    Raises:
        BadInputError: when no face can be found in the photos.
    """
    from mfsbench.export.stages import face_crops_per_photo, frame_stage_inputs

    images, source = _photos(faces_dir)
    # mirrored crops add variety at no cost
    per_photo = [c for c in face_crops_per_photo(spec, size, images, limit=limit, mirror=True) if c]
    if not per_photo:
        raise BadInputError(f"no face found in {source}; pass --faces DIR with face photos")

    def tuples(groups: list[list[np.ndarray]]) -> list[tuple[Any, ...]]:
        return frame_stage_inputs(spec, size, [c for group in groups for c in group][:limit])

    if len(per_photo) == 1:
        parity = tuples(per_photo)
        return parity, parity, f"{len(parity)} aligned crop(s) from {source} (int8 calibrated on the same)"
    parity, calibration = tuples(per_photo[1::2]), tuples(per_photo[0::2])
    note = (f"{len(parity)} aligned crop(s) from {source}; int8 calibrated on {len(calibration)} "
            "other crop(s) from disjoint photos")
    return parity, calibration, note


def _timing_inputs(prepared: Any, sample: tuple[Any, ...]) -> dict[str, np.ndarray]:
    names = [info.name for info in prepared.inputs]
    return {name: np.asarray(value, np.float32) for name, value in zip(names, sample, strict=True)}


def measure_model(
    spec: ModelSpec,
    size: int,
    *,
    cells: Sequence[tuple[str, str]],
    settings: SweepSettings,
    work_dir: Path,
    samples: Sequence[tuple[Any, ...]],
    samples_note: str,
    peak: PeakResult | None = None,
    calibration: Sequence[tuple[Any, ...]] | None = None,
    done: Collection[CellKey] = (),
    on_record: Callable[[Record], None] | None = None,
) -> list[Record]:
    """Every (backend, precision) cell of one model; returns one record per cell measured.

    ``calibration`` (int8 only) defaults to ``samples``; pass a disjoint set for a held-out parity.
    Cells in ``done`` (a resumed sweep's) are left out. ``on_record`` gets each record as soon as
    its cell is finished, so that the caller can store it before the next cell starts.
    """
    from mfsbench.export.stages import stage_input_names, stage_module

    todo = pending_cells(spec.name, size, cells, done)
    if not todo:
        return []
    model = create_model(spec.name)
    module, example = stage_module(spec, model, "frame", size)
    gmacs = count_flops(module, example, "paper", cross_check=False).flops / 1e9
    base_info: dict[str, Any] = {"display_name": spec.display_name, "size": size, "stage": "frame",
                                 "parity_inputs": samples_note, "gmacs_paper": gmacs,
                                 "peak_macs_per_s": peak and peak.macs_per_s,
                                 "peak_method": peak and peak.method, "sweep": settings.describe()}
    exported: dict[tuple[str, str], Any] = {}
    records: list[Record] = []
    try:
        for backend, precision in todo:
            info = {**base_info, "backend": backend, "precision": precision}
            record = Record(COMMAND, spec.name, stage="frame", mode="video", convention="paper",
                            input_shapes={"target": [1, 3, size, size]}, info=info)
            if precision not in BACKEND_PRECISIONS[backend]:
                record.status, record.error = "skipped", f"{backend} does not run {precision} exports"
            else:
                try:
                    _measure_cell(record, spec, module=module, example=example,
                                  input_names=stage_input_names(spec, "frame"), backend=backend,
                                  precision=precision, settings=settings, work_dir=work_dir,
                                  samples=samples, exported=exported,
                                  calibration=calibration if calibration is not None else samples)
                except MfsbenchError as exc:
                    record.status, record.error = "error", str(exc)
                except Exception as exc:
                    record.status, record.error = "error", f"{type(exc).__name__}: {exc}".splitlines()[0]
            records.append(record)
            if on_record is not None:
                on_record(record)
    finally:
        del model, module
        gc.collect()
    return records


def _measure_cell(
    record: Record,
    spec: ModelSpec,
    *,
    module: nn.Module,
    example: tuple[Tensor, ...],
    input_names: tuple[str, ...],
    backend: str,
    precision: str,
    settings: SweepSettings,
    work_dir: Path,
    samples: Sequence[tuple[Any, ...]],
    exported: dict[tuple[str, str], Any],
    calibration: Sequence[tuple[Any, ...]],
) -> None:
    from mfsbench.export.base import get_exporter
    from mfsbench.export.parity import check_parity
    from mfsbench.device.runtimes import get_runtime
    from mfsbench.device.timing import time_runtime, timed_prepare

    fmt = BACKEND_FORMAT[backend]
    target: Any = module
    if fmt is not None:
        key = (fmt, precision)
        if key not in exported:
            artifact = get_exporter(fmt).export(
                module, example, work_dir / spec.name, precision, input_names=input_names,
                calibration=calibration if precision == "int8" else None,
                stem=f"{spec.name}_{fmt}_{precision}",
            )
            parity = check_parity(module, artifact, samples)
            exported[key] = (artifact, parity)
        artifact, parity = exported[key]
        record.metrics.update(parity.metrics())
        record.info.update({"format": fmt, "artifact_sha256": artifact.sha256,
                            "artifact_mb": artifact.size_mb, "parity_runtime": parity.runtime})
        failure = parity.failure()
        if failure:
            raise BadInputError(f"{failure}; not timed")
        target = artifact.path
    if backend == "benchmark_app":
        _vendor_cell(record, target, settings)
        return
    runtime = get_runtime(backend)
    if fmt is None:  # a torch module's forward(*inputs) hides its input names: give them
        shapes = {name: tuple(t.shape) for name, t in zip(input_names, example, strict=True)}
        started = time.perf_counter()
        prepared = runtime.prepare(target, settings.threads, input_shapes=shapes)  # type: ignore[call-arg]
        init_ms = (time.perf_counter() - started) * 1000
    else:
        prepared, init_ms = timed_prepare(runtime, target, settings.threads)
    inputs = _timing_inputs(prepared, samples[0])
    with torch.inference_mode():
        result = time_runtime(prepared, inputs, settings.warmup, settings.runs,
                              settings.min_seconds, settings.max_seconds, init_ms=init_ms,
                              threads=settings.threads)
    record.info["runtime_info"] = {k: str(v) for k, v in getattr(prepared, "info", {}).items()}
    del prepared  # its threads and buffers must not compete with the profiling session
    profile = getattr(runtime, "profile", None)
    if settings.profile and callable(profile):
        try:
            record.info["op_profile"] = profile(target, settings.threads, inputs,
                                                settings.profile_runs).as_dict()
        except Exception as exc:  # a profiler failure must not discard a valid timing
            record.info["op_profile_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    record.metrics.update(result.metrics())
    record.metrics["gmacs"] = record.info["gmacs_paper"]
    record.info["samples_ms"] = list(result.samples_ms)
    peak = record.info.get("peak_macs_per_s")
    if peak:
        record.metrics["efficiency"] = efficiency(record.metrics["gmacs"], record.metrics["p50_ms"], peak)


def _vendor_cell(record: Record, model_path: Path, settings: SweepSettings) -> None:
    """Time ``model_path`` with OpenVINO's ``benchmark_app`` (f32, sync, one stream, T threads).

    Its numbers land under the harness's metric names where they mean the same thing (median →
    ``p50_ms``); what it does not report (percentiles, std, CV, raw samples) stays absent rather
    than being made up.
    """
    from mfsbench.device.runtimes.benchmark_app import run_benchmark_app

    runs = max(settings.runs, settings.warmup + 1)
    parsed = run_benchmark_app(model_path, niter=runs, threads=settings.threads, precision="f32",
                               timeout_s=max(60.0, 4 * settings.max_seconds))
    median = parsed["latency_median_ms"]
    metrics = {"p50_ms": median, "fps_p50": 1000.0 / median, "threads": float(settings.threads)}
    for ours, theirs in (("mean_ms", "latency_avg_ms"), ("min_ms", "latency_min_ms"),
                         ("max_ms", "latency_max_ms"), ("first_run_ms", "first_inference_ms"),
                         ("runs", "count")):
        if theirs in parsed:
            metrics[ours] = float(parsed[theirs])
    if "read_model_ms" in parsed and "compile_model_ms" in parsed:
        metrics["init_ms"] = parsed["read_model_ms"] + parsed["compile_model_ms"]
    record.metrics.update(metrics)
    record.metrics["gmacs"] = record.info["gmacs_paper"]
    record.info["runtime_info"] = {"tool": "benchmark_app", "version": str(parsed.get("version", "?")),
                                   "inference_precision": str(parsed.get("inference_precision", "?")),
                                   "command": " ".join(parsed["command"])}
    peak = record.info.get("peak_macs_per_s")
    if peak:
        record.metrics["efficiency"] = efficiency(record.metrics["gmacs"], median, peak)
