"""``mfsbench device``: export, verify and time the video-mode frame stage on this machine.

Writes ``OUT/device_desktop.{md,csv,png}`` and appends one record per model × backend × precision to
``OUT/records.jsonl`` as each cell finishes, so an interrupted sweep loses at most the cell in
progress; ``--resume`` continues the newest sweep in ``OUT`` (same options required). Phones
(``--adb``) are a separate runner.

``--engine ray`` (``--ray-address ADDR`` for a cluster) runs each model × size as one Ray task
(:mod:`mfsbench.device.units`) on a node that declares the ``mfsbench-timer`` resource, one timing
unit per node at a time; each record is measured, stamped with its host and its node's peaks in the
worker, and appended here as its unit lands. With ``--adb`` one unit is phone × model on the host
the phone is plugged into (:mod:`device_runners.android.units`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mfsbench.cli.common import (
    add_engine_options,
    add_license_option,
    add_list_option,
    apply_license_option,
    frame_stage_specs,
    writable_dir,
)
from mfsbench.records import Record, append_records, new_run_id, read_records, stamp

if TYPE_CHECKING:
    from collections.abc import Callable

    from mfsbench.device.roofline import Peaks
    from mfsbench.device.sweep import CellKey, ResumePoint, SweepSettings, WeightsRef
    from mfsbench.registry import ModelSpec

DEFAULT_MODELS = ["mobilefaceswap_224", "simswap_224"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_list_option(parser, "--models", help=f"models (default: {','.join(DEFAULT_MODELS)})")
    add_list_option(parser, "--backends", metavar="BACKEND",
                    help="runtimes: torch-eager onnxruntime openvino litert, and benchmark_app "
                         "(OpenVINO's own tool, opt-in) (default: all installed runtimes)")
    add_list_option(parser, "--precision", metavar="PRECISION",
                    help="what the kernels compute: fp32 bf16 fp16 int8, or fp16-weights (fp16 storage, "
                         "f32 compute) (default: fp32, bf16 and int8 wherever a runtime has them; "
                         "a CPU without native bf16 gets skipped cells that say so)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[FORMAT=]PATH",
                        help="official checkpoint(s) of the model, as for swap (default: random weights, "
                             "seeded; every record says which)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--threads", type=int, default=2,
                        help="intra-op threads of every runtime (default 2)")
    parser.add_argument("--runs", type=int, default=20, help="minimum timed runs (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before timing (default 3)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="minimum timed seconds (default 2)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="cap per cell (default 30)")
    parser.add_argument("--peak-seconds", type=float, default=2.0,
                        help="seconds each peak kernel is timed for the roofline (default 2; the record "
                             "states the runs and seconds behind every peak)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile per operator where the runtime can (onnxruntime, openvino): "
                             "separate runs after timing, shown under 'Where the time goes'")
    parser.add_argument("--size", type=int, default=None,
                        help="frame size (default: each model's native size)")
    parser.add_argument("--faces", default=None, help="folder of face photos for parity and int8 calibration")
    add_license_option(parser)
    parser.add_argument("--format", choices=("table", "md", "csv", "json"), default="table",
                        help="what this run prints on stdout; the files under OUT are written either way "
                             "(default: table)")
    parser.add_argument("--out", default="reports",
                        help="directory for records and reports (default: reports)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the newest sweep in OUT: measure only its missing cells, under "
                             "its run id (needs the same timing options)")
    add_engine_options(parser, local="cells one after another on this machine; --adb: this host's phones",
                       ray="one Ray task per model, one timing at a time on each node that declares the "
                           "mfsbench-timer resource (`mfsbench ray-node`); --adb: one task per phone × "
                           "model on the cluster's adb:<serial> phones")
    parser.add_argument("--results-url", default=None, metavar="URL",
                        help="desktop sweep: each model unit also publishes its records as one immutable "
                             "Parquet file under URL (a shared folder or any fsspec URL); --resume imports "
                             "this run's published units instead of measuring them again")
    phone = parser.add_argument_group("phones (--adb)")
    phone.add_argument("--adb", action="store_true",
                       help="time on Android phones through adb instead of this machine")
    phone.add_argument("--serial", action="append", default=None,
                       help="device serial or HOST:PORT, repeatable (default: every attached device)")
    phone.add_argument("--benchmark-binary", default=None,
                       help="Android benchmark_model or onnxruntime_perf_test to push (never downloaded)")
    phone.add_argument("--adb-timeout", type=float, default=60.0, help="seconds per adb call (default 60)")
    phone.add_argument("--delegate", default="xnnpack", help="cpu xnnpack gpu nnapi (default xnnpack)")
    phone.add_argument("--gpu-precision", default="fp32", help="fp32 or fp16: what TFLite's GPU delegate is "
                       "told (--delegate gpu only; default fp32, the delegate's own default is fp16)")
    phone.add_argument("--affinity", default=None, help="taskset CPU mask on the phone, e.g. f0")
    phone.add_argument("--cooldown-timeout", type=float, default=120.0,
                       help="max seconds to wait for the phone to cool before each model (default 120)")
    phone.add_argument("--max-thermal-status", type=int, default=0,
                       help="cool-down gate: highest thermal status to start at (default 0)")
    phone.add_argument("--max-battery-temp", type=float, default=38.0,
                       help="cool-down gate: highest battery temperature °C to start at (default 38)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    apply_license_option(args)
    from mfsbench.engine import check_engine_options

    check_engine_options(args.engine, args.ray_address)
    if args.adb:
        from device_runners.android.cli import run_adb

        if args.results_url:
            from mfsbench.errors import BadInputError

            raise BadInputError("--results-url publishes desktop sweep units; phone runs (--adb) write "
                                "OUT/records.jsonl as each phone × model lands: drop --results-url")
        return run_adb(args)
    from mfsbench.device.axis import sweep_cells
    from mfsbench.device.runtimes import available_runtimes
    from mfsbench.device.sweep import SweepSettings, WeightsRef, check_choices, resume_point
    from mfsbench.errors import BadInputError
    from mfsbench.report import device as device_report

    backends = args.backends or available_runtimes()
    check_choices(backends, args.precision or [])
    if args.threads < 1 or args.runs < 1 or args.warmup < 0 or args.min_seconds < 0 or args.peak_seconds < 0:
        raise BadInputError("--threads and --runs must be ≥ 1; --warmup, --min-seconds and "
                            "--peak-seconds ≥ 0")
    specs = _checked_specs(args)
    faces = Path(args.faces) if args.faces else None
    if faces is not None and not faces.is_dir():
        raise BadInputError(f"--faces {faces} is not a folder of photos")
    if args.checkpoint and len(specs) != 1:
        raise BadInputError("--checkpoint loads one model's files: pass exactly one --models with it")
    if args.checkpoint and specs[0].card is not None:
        raise BadInputError(f"--checkpoint with card {specs[0].name}: a card's weights are its ONNX file "
                            "(files.swapper); drop --checkpoint")
    weights = WeightsRef(seed=None if args.checkpoint else args.seed, checkpoints=tuple(args.checkpoint))
    out = writable_dir(args.out)
    store = out / "records.jsonl"
    described = (f"checkpoints {' '.join(weights.checkpoints)}" if weights.checkpoints
                 else f"random, seed {args.seed}")
    settings = SweepSettings(args.threads, args.warmup, args.runs, args.min_seconds, args.max_seconds,
                             profile=args.profile, faces=str(faces.resolve()) if faces else None,
                             weights=described)
    stored = read_records(store) if args.resume and store.is_file() else []
    resumed = resume_point(stored, settings, store) if args.resume else None
    run_id = resumed.run_id if resumed else new_run_id()
    this_run = list(resumed.records) if resumed else []

    def keep(record: Record) -> None:
        record.info.setdefault("engine", "local")  # a unit's worker says ray (and on which node)
        append_records(store, stamp([record], run_id))
        this_run.append(record)

    cells = sweep_cells(backends, args.precision)
    try:
        if args.engine == "ray" or args.ray_address or args.results_url:
            _sweep_on_engine(args, specs, cells, settings, faces=faces, weights=weights, resumed=resumed,
                             on_record=keep, run_id=run_id)
        else:
            _sweep(specs, cells, settings, args.size, faces=faces, weights=weights,
                   peak_seconds=args.peak_seconds, done=resumed.done if resumed else set(),
                   peaks=resumed.peaks if resumed else None, on_record=keep)
    except KeyboardInterrupt:
        print(f"mfsbench device: interrupted; {len(this_run)} cell(s) of run {run_id} are in {store}; "
              "the same command with --resume measures the rest", file=sys.stderr)
        return 130
    renderers = {"table": device_report.render_terminal, "md": device_report.render_markdown,
                 "csv": device_report.render_csv, "json": device_report.render_json}
    print(renderers[args.format](this_run))
    for path in device_report.write_reports(read_records(store), out):
        print(f"wrote {path}", file=sys.stderr)
    errors = [r for r in this_run if r.status == "error"]
    for record in errors:
        print(f"error: {record.model} {record.info.get('backend')} {record.info.get('precision')}: "
              f"{record.error}", file=sys.stderr)
    return 1 if errors else 0


def _checked_specs(args: argparse.Namespace) -> list[ModelSpec]:
    """The ``--models`` specs, each with a frame stage, the asked size, and (a card) a pinned sha256."""
    from mfsbench.device.card import require_sha256

    specs = frame_stage_specs(args.models, DEFAULT_MODELS, args.size)
    for spec in specs:
        if spec.card is not None:
            require_sha256(spec)
    return specs


def _sweep(specs: list[ModelSpec], cells: list[tuple[str, str]], settings: SweepSettings, size: int | None,
           *, faces: Path | None, weights: WeightsRef, peak_seconds: float = 2.0, done: set[CellKey],
           peaks: Peaks | None, on_record: Callable[[Record], None]) -> None:
    """Measure every pending cell of every model, handing each record to ``on_record`` at once."""
    from mfsbench.device.roofline import measure_peaks
    from mfsbench.device.sweep import face_sample_sets, measure_model, pending_cells

    if peaks is None:
        print("device: measuring this machine's peak MAC/s per precision ...", file=sys.stderr, flush=True)
        peaks = measure_peaks(threads=settings.threads, min_seconds=peak_seconds)
    with tempfile.TemporaryDirectory(prefix="mfsbench-device-") as work:
        for spec in specs:
            side = size or spec.native_size
            if not pending_cells(spec.name, side, cells, done):
                print(f"device: {spec.name} @ {side}: every cell is measured already", file=sys.stderr)
                continue
            print(f"device: {spec.name} @ {side} ...", file=sys.stderr, flush=True)
            samples = face_sample_sets(spec, side, faces)
            measure_model(spec, side, cells=cells, settings=settings, work_dir=Path(work), samples=samples,
                          weights=weights, peaks=peaks, peak_seconds=peak_seconds, done=done,
                          on_record=on_record)


def _sweep_on_engine(args: argparse.Namespace, specs: list[ModelSpec], cells: list[tuple[str, str]],
                     settings: SweepSettings, *, faces: Path | None, weights: WeightsRef,
                     resumed: ResumePoint | None, on_record: Callable[[Record], None], run_id: str) -> None:
    """Every model with pending cells as one engine unit; each unit's records handed to ``on_record``
    as the unit lands (a killed driver keeps every landed unit; ``--resume`` runs the rest). With
    ``--results-url`` each unit also publishes its records as one file, and a unit of this run found
    published is imported, not measured again (a driver killed after a unit finished but before its
    records reached ``records.jsonl``).

    Raises:
        BadInputError: ``--ray-address`` without ``--engine ray``, or a cluster no timing unit can run on.
    """
    from mfsbench.device.sweep import pending_cells
    from mfsbench.device.units import (
        DesktopUnitTask,
        published_names,
        published_records,
        stored_peaks_by_host,
    )
    from mfsbench.engine import get_engine

    done = resumed.done if resumed else set()
    url = args.results_url
    task = DesktopUnitTask(tuple(cells), settings, weights, str(faces.resolve()) if faces else None,
                           args.peak_seconds, frozenset(done),
                           stored_peaks_by_host(resumed.records) if resumed else (),
                           engine="ray" if args.engine == "ray" or args.ray_address else "local",
                           results_url=url, run_id=run_id)
    units = []
    listed = published_names(url) if url else set()
    for spec in specs:
        side = args.size or spec.native_size
        if not pending_cells(spec.name, side, cells, done):
            print(f"device: {spec.name} @ {side}: every cell is measured already", file=sys.stderr)
            continue
        published = published_records(url, task.unit_name((spec, side)), listed) if url else None
        if published is None:
            units.append((spec, side))
            continue
        print(f"device: {spec.name} @ {side}: {len(published)} cell(s) of this run imported from {url} "
              "(published before the driver stopped)", file=sys.stderr)
        for record in published:
            on_record(record)
    if not units:
        return
    engine = get_engine(task.engine, address=args.ray_address)
    try:
        if engine.name == "ray":
            from mfsbench.engine.timing import check_timing_nodes

            nodes = check_timing_nodes(engine.nodes(), settings.threads)  # type: ignore[attr-defined]
            print(f"device: {len(units)} model unit(s) on Ray, one timing at a time on each of {len(nodes)} "
                  "timing node(s) ...", file=sys.stderr, flush=True)

        def landed(unit: tuple[ModelSpec, int], records: list[Record]) -> None:
            host = records[0].env.get("host", "?") if records else "?"
            print(f"device: {unit[0].name} @ {unit[1]}: {len(records)} cell(s) measured on {host}",
                  file=sys.stderr, flush=True)
            for record in records:
                on_record(record)

        engine.run(task, units, landed)
    finally:
        engine.close()
