"""One desktop cell, measured in a fresh process: cold start, parity, timing, read-back, memory.

Why a process per cell: the first ``prepare`` of a file in a process is the cold start an app pays
(ORT init 80 ms cold vs 6.5 ms the second time in one process; OpenVINO 584 vs 163 ms), and a
process's peak RSS is a lifetime high-water mark, so in one long sweep process every cell would
carry the memory of every cell before it. Here nothing has opened the artefact before ``prepare``,
and the peak is this cell's own.

Order inside the cell process, each step through the *same* prepared model that is timed:

1. import the runtime's package (``import_ms``; RSS afterwards is ``rss_after_import_mb``);
2. ``prepare`` (``init_ms``, cold) and the first inference on the first parity sample
   (``first_run_ms``, cold);
3. parity on every parity sample against torch's fp32 outputs computed by the parent: a cell
   outside its precision's tolerance stops here and is never timed;
4. the read-back of what executed (:data:`mfsbench.device.axis.READBACK_KEYS`): a cell whose matrix
   ops ran another precision than its plan asks is an error naming both;
5. warm-up and the timed runs (:func:`mfsbench.device.timing.time_runtime`);
6. peak RSS of this process (``VmHWM``), then the optional per-operator profile in separate runs.

The parent writes a :class:`CellJob` (JSON) and the parity data (``.npz``); the child writes its
:class:`CellOutcome` as JSON. Neither side pickles anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfsbench.errors import MfsbenchError

#: seconds a cell process may take beyond twice its timing cap (imports, cold compile, parity)
_CHILD_TIMEOUT_MARGIN_S = 300.0


@dataclass
class CellJob:
    """Everything the cell process needs; plain JSON values only."""

    runtime: str
    #: what the runtime is asked to compute (fp32, bf16, fp16, int8): see :mod:`mfsbench.device.axis`
    compute: str
    #: the parity tolerance's key (fp32, bf16, fp16, int8)
    tolerance: str
    #: the exported file (None for torch-eager, which rebuilds the module from ``torch_stage``)
    artifact: str | None
    #: torch-eager only: ``{"model", "size", "seed", "checkpoints"}`` to rebuild the same weights
    torch_stage: dict[str, Any] | None
    #: ``.npz`` with ``in_<sample>_<input>`` and ``ref_<sample>_<output>`` arrays
    data: str
    input_names: list[str]
    output_names: list[str]
    samples: int
    threads: int
    warmup: int
    runs: int
    min_seconds: float
    max_seconds: float
    profile: bool = False
    profile_runs: int = 20
    #: label of the format for the parity record ("onnx", "openvino", "tflite", "module")
    format: str = "module"
    #: what the reference outputs in ``data`` came from (a model card's: ONNX Runtime fp32)
    reference: str = "torch fp32"


@dataclass
class CellOutcome:
    """What the cell process measured; ``status`` ok / error with ``error`` one line."""

    status: str = "ok"
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    samples_ms: list[float] = field(default_factory=list)
    runtime_info: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    op_profile: dict[str, Any] | None = None
    op_profile_error: str | None = None


# --------------------------------------------------------------------------- parent side

def write_parity_data(path: Path, inputs: list[tuple[np.ndarray, ...]],
                      references: list[list[np.ndarray]]) -> None:
    """The parity samples and torch's outputs for them, as one ``.npz`` the child reads."""
    arrays: dict[str, np.ndarray] = {}
    for i, (sample, ref) in enumerate(zip(inputs, references, strict=True)):
        for j, value in enumerate(sample):
            arrays[f"in_{i}_{j}"] = np.ascontiguousarray(value, np.float32)
        for k, value in enumerate(ref):
            arrays[f"ref_{i}_{k}"] = np.ascontiguousarray(value, np.float32)
    np.savez(path, **arrays)


def run_cell(job: CellJob, work_dir: Path, timeout_s: float | None = None) -> CellOutcome:
    """Measure ``job`` in a fresh ``python -m mfsbench.device.cell`` process.

    A child that crashes, is killed or times out is an ``error`` outcome naming what happened (with
    the last line of its stderr), never an exception: the sweep goes on with the next cell.
    KeyboardInterrupt reaches the child through the process group and is re-raised here.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    stem = f"cell-{job.runtime}-{job.compute}-{os.getpid()}-{time.monotonic_ns()}"
    job_path, out_path = work_dir / f"{stem}.json", work_dir / f"{stem}.out.json"
    job_path.write_text(json.dumps(asdict(job)), encoding="utf-8")
    limit = timeout_s or (job.max_seconds * 2 + _CHILD_TIMEOUT_MARGIN_S)
    command = [sys.executable, "-m", "mfsbench.device.cell", str(job_path), str(out_path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=False,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired:
        return CellOutcome("error", f"cell process ran past {limit:.0f} s and was killed")
    if done.returncode in (130, -2):
        raise KeyboardInterrupt
    if not out_path.is_file():
        tail = (done.stderr or "").strip().splitlines()
        why = tail[-1] if tail else "no output"
        return CellOutcome("error", f"cell process exited {done.returncode} without a result: {why}")
    raw = json.loads(out_path.read_text(encoding="utf-8"))
    return CellOutcome(**raw)


# --------------------------------------------------------------------------- child side

def _vm_status(key: str) -> float | None:
    """``VmRSS``/``VmHWM`` of this process in MiB from /proc (None off Linux)."""
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{key}:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _load_samples(job: CellJob) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
    """Positional input arrays and torch's reference outputs, per parity sample."""
    with np.load(job.data) as data:
        inputs = [[data[f"in_{i}_{j}"] for j in range(len(job.input_names))] for i in range(job.samples)]
        refs = [[data[f"ref_{i}_{k}"] for k in range(len(job.output_names))] for i in range(job.samples)]
    return inputs, refs


def _torch_stage(job: CellJob) -> Any:
    from mfsbench.device.sweep import WeightsRef, build_frame_stage
    from mfsbench.registry import get_spec

    spec = job.torch_stage or {}
    weights = WeightsRef(seed=spec.get("seed"), checkpoints=tuple(spec.get("checkpoints") or ()))
    module, _example, _described = build_frame_stage(get_spec(spec["model"]), int(spec["size"]), weights)
    return module


def _why_not_timed(job: CellJob, info: dict[str, Any], parity_failure: str | None) -> str | None:
    """Why the cell must not be timed: parity outside tolerance, no read-back, or another precision
    than the plan's executed (a fast wrong model, or a silent fallback, is not a result)."""
    from mfsbench.device.axis import READBACK_KEYS

    if parity_failure:
        return f"{parity_failure}; not timed"
    missing = [key for key in READBACK_KEYS if key not in info]
    if missing:
        return f"{job.runtime} did not report what it executed ({', '.join(missing)} missing); not timed"
    executed = str(info["executed_precision"])
    if executed != job.compute:
        return (f"{job.runtime} was asked for {job.compute} but its matrix ops ran {executed} "
                f"({info['op_precisions']}, read from {info['precision_source']}); not timed")
    return None


def measure(job: CellJob) -> CellOutcome:
    """The child's work (module docstring, steps 1–6)."""
    from mfsbench.device.runtimes import get_runtime
    from mfsbench.device.timing import time_runtime
    from mfsbench.export.compare import compare_outputs

    outcome = CellOutcome()
    started = time.perf_counter()
    runtime = get_runtime("openvino" if job.runtime == "benchmark_app" else job.runtime, compute=job.compute)
    target: Any = job.artifact
    inputs, refs = _load_samples(job)
    batched = [[v[None] if v.ndim == 3 else v for v in sample] for sample in inputs]
    kwargs: dict[str, Any] = {}
    if job.runtime == "torch-eager":
        target = _torch_stage(job)
        kwargs["input_shapes"] = {name: tuple(v.shape) for name, v in zip(job.input_names, batched[0],
                                                                            strict=True)}
    else:
        from mfsbench.optional import require

        require(runtime.module, runtime.package, f"the {job.runtime} runtime")
    deferred = callable(getattr(runtime, "read_back", None))
    if deferred:  # the read-back's own imports and files stay out of the cold init
        kwargs["read_back"] = False
    import_ms = (time.perf_counter() - started) * 1000.0
    rss_after_import = _vm_status("VmRSS")

    t0 = time.perf_counter()
    prepared = runtime.prepare(target, job.threads, **kwargs)
    init_ms = (time.perf_counter() - t0) * 1000.0
    # positional samples → the artefact's own input names (a TFLite signature says args_0)
    names = [info.name for info in prepared.inputs]
    named = [dict(zip(names, sample, strict=True)) for sample in batched]
    t0 = time.perf_counter()
    first = prepared.run(named[0])
    first_run_ms = (time.perf_counter() - t0) * 1000.0
    if deferred:
        prepared.info.update(runtime.read_back(target, job.threads))  # type: ignore[attr-defined]

    got = [first] + [prepared.run(sample) for sample in named[1:]]
    checked_by = (f"{runtime.name} Python API, same IR and precision request (benchmark_app returns no "
                  "outputs)" if job.runtime == "benchmark_app" else f"{runtime.name} (the timed session)")
    parity = compare_outputs(refs, got, job.output_names, fmt=job.format, precision=job.tolerance,
                             runtime=checked_by, reference=job.reference)
    outcome.parity = {"max_abs_err": parity.max_abs_err, "psnr_db": parity.psnr_db,
                      "runtime": parity.runtime, "samples": parity.samples,
                      "outputs": [asdict(o) for o in parity.outputs]}
    outcome.metrics.update(parity.metrics())
    info = dict(prepared.info)
    outcome.runtime_info = json.loads(json.dumps(info, default=str))
    outcome.metrics.update({"import_ms": import_ms, "init_ms": init_ms, "first_run_ms": first_run_ms})
    why = _why_not_timed(job, info, parity.failure())
    if why:
        outcome.status, outcome.error = "error", why
        return outcome

    timing_inputs = named[0]
    if job.runtime == "benchmark_app":
        del prepared
        _time_with_benchmark_app(job, outcome)
    else:
        result = time_runtime(prepared, timing_inputs, job.warmup, job.runs, job.min_seconds,
                              job.max_seconds, init_ms=init_ms, threads=job.threads)
        result.first_run_ms = first_run_ms  # the cold one, taken before parity
        metrics = result.metrics()
        metrics.pop("peak_rss_mb", None)  # the process's, taken below from VmHWM
        outcome.metrics.update(metrics)
        outcome.metrics["too_few_runs"] = float(result.too_few_runs)
        outcome.samples_ms = list(result.samples_ms)
        del prepared
    peak = _vm_status("VmHWM")
    if peak is not None:
        outcome.metrics["peak_rss_mb"] = peak
    if rss_after_import is not None:
        outcome.metrics["rss_after_import_mb"] = rss_after_import
    profile = getattr(runtime, "profile", None)
    if job.profile and callable(profile) and job.runtime != "benchmark_app":
        try:
            outcome.op_profile = profile(target, job.threads, timing_inputs, job.profile_runs).as_dict()
        except Exception as exc:  # a profiler failure must not discard a valid timing
            outcome.op_profile_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return outcome


def _time_with_benchmark_app(job: CellJob, outcome: CellOutcome) -> None:
    """OpenVINO's own tool on the same IR and precision request; its numbers under our metric names
    where they mean the same thing (median → ``p50_ms``), nothing it does not report invented."""
    from mfsbench.device.runtimes.benchmark_app import run_benchmark_app

    parsed = run_benchmark_app(Path(str(job.artifact)), niter=job.runs, threads=job.threads,
                               precision=job.compute, min_seconds=job.min_seconds, warmup=job.warmup,
                               timeout_s=max(60.0, 4 * job.max_seconds))
    median = parsed["latency_median_ms"]
    outcome.metrics.update({"p50_ms": median, "fps_p50": 1000.0 / median})
    for ours, theirs in (("mean_ms", "latency_avg_ms"), ("min_ms", "latency_min_ms"),
                         ("max_ms", "latency_max_ms"), ("tool_first_run_ms", "first_inference_ms"),
                         ("runs", "count"), ("threads", "threads"),
                         ("warmup_runs", "warmup_runs_excluded")):
        if parsed.get(theirs) is not None:
            outcome.metrics[ours] = float(parsed[theirs])
    outcome.runtime_info = {
        **outcome.runtime_info,
        "tool": "benchmark_app", "tool_version": str(parsed.get("version", "?")),
        "tool_inference_precision": str(parsed.get("inference_precision", "?")),
        "command": " ".join(parsed["command"]),
        "warmup_requested": job.warmup,
        "warmup_note": "benchmark_app excludes at most its one first inference from its statistics",
        "parity_note": "benchmark_app returns no outputs: parity ran through OpenVINO's Python API "
                       "on the same IR with the same precision request",
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m mfsbench.device.cell JOB.json OUT.json``: measure one cell, write its outcome."""
    args = sys.argv[1:] if argv is None else argv
    job_path, out_path = Path(args[0]), Path(args[1])
    job = CellJob(**json.loads(job_path.read_text(encoding="utf-8")))
    try:
        outcome = measure(job)
    except KeyboardInterrupt:
        return 130
    except MfsbenchError as exc:
        outcome = CellOutcome("error", str(exc))
    except Exception as exc:
        outcome = CellOutcome("error", f"{type(exc).__name__}: {exc}".splitlines()[0])
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(outcome)), encoding="utf-8")
    tmp.replace(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
