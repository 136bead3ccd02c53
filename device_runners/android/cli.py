"""``mfsbench device --adb``: export each frame stage, time it on every selected phone, write the report.

Each phone × model record is appended to ``OUT/records.jsonl`` as soon as it is final, so a killed run
keeps what it measured; ``--resume`` runs only the cells the newest phone run in OUT lacks (or failed),
under its run id, after checking it was measured with the same options and benchmark binary.

With ``--engine ray`` the phones are the cluster's ``adb:<serial>`` resources (``mfsbench ray-node`` on
each phone host declares them): one unit is phone × model, run on the host the phone is plugged into,
one at a time per phone and phones in parallel (:mod:`device_runners.android.units`); the driver
needs no adb of its own, and appends each unit's record as it lands.

Exit codes: 0 every record ok, 1 some device or model failed (its error record is written), 2 bad
input (no device attached, unknown serial, missing benchmark binary, a resume with other options),
raised as BadInputError before any export starts; 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device_runners.android.adb import Adb
from device_runners.android.runner import (
    COMMAND,
    PhoneModel,
    PhoneSettings,
    run_devices,
    tool_of,
)
from mfsbench.cli.common import frame_stage_specs, writable_dir
from mfsbench.errors import BadInputError
from mfsbench.records import Record, append_records, last_run, new_run_id, read_records, stamp

if TYPE_CHECKING:
    from collections.abc import Callable

    from mfsbench.device.sweep import WeightsRef
    from mfsbench.registry import ModelSpec


def _say(line: str) -> None:
    """Progress and errors go to stderr (stdout carries the table)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _serials(adb: Adb, wanted: list[str] | None) -> list[str]:
    """The requested serials (``HOST:PORT`` ones are ``adb connect``ed first), or all attached."""
    for serial in wanted or []:
        if ":" in serial and serial not in adb.devices():
            adb.connect(serial)
    attached = {s for s, state in adb.devices().items() if state == "device"}
    if not wanted:
        if not attached:
            raise BadInputError("no Android device attached (adb devices -l lists none in 'device' state); "
                                "plug in a phone with USB debugging on, or pass --serial HOST:PORT")
        return sorted(attached)
    unknown = [s for s in wanted if s not in attached]
    if unknown:
        raise BadInputError(f"unknown or offline serial {', '.join(unknown)}; attached: "
                            f"{', '.join(sorted(attached)) or 'none'} (see adb devices -l)")
    return list(dict.fromkeys(wanted))


def export_models(specs: list[ModelSpec], size_arg: int | None, tool: str, work: Path,
                  weights: WeightsRef | None = None) -> list[PhoneModel]:
    """Each spec's frame stage as the file the tool runs, in ``work``: a zoo model with ``weights``
    (seeded random ones by default, as on the desktop, so every phone and host runs the same file);
    a card's own ONNX file as it is under onnxruntime_perf_test, or its onnx2tf conversion (the
    ``cards-tflite`` extra, per-user cache) under a TFLite benchmark_model."""
    from mfsbench.device.sweep import WeightsRef, build_frame_stage, weights_for
    from mfsbench.export.base import get_exporter
    from mfsbench.export.stages import stage_input_names

    exporter = get_exporter("onnx" if tool == "ort" else "tflite")
    models = []
    for spec in specs:
        size = size_arg or spec.native_size
        if spec.card is not None:
            from mfsbench.device.card import phone_file, weights_described

            path, fmt, details = phone_file(spec, tool)
            models.append(PhoneModel(spec.name, path, size, {
                "display_name": spec.display_name, "format": fmt, "size_mb": path.stat().st_size / 1e6,
                "weights": weights_described(spec), "export": details, **spec.card.record_info()}))
            continue
        _say(f"device --adb: exporting {spec.name} @ {size} to {exporter.name} fp32 ...")
        module, example, described = build_frame_stage(spec, size, weights_for(spec, weights or WeightsRef()))
        artifact = exporter.export(module, example, work / spec.name, "fp32",
                                   input_names=stage_input_names(spec, "frame"), stem=spec.name)
        models.append(PhoneModel(spec.name, artifact.path, size,
                                 {"display_name": spec.display_name, "format": artifact.format,
                                  "size_mb": artifact.size_mb, "weights": described,
                                  **spec.card_record_info()}))  # a weights card: licence, files
    return models


def check_card_for_phone(spec: ModelSpec, tool: str) -> None:
    """A card runs on a phone through onnxruntime_perf_test (its ONNX file, pushed as it is), or
    under a TFLite benchmark_model as its onnx2tf conversion when the ``cards-tflite`` extra is here.

    Raises:
        BadInputError: a card with a TFLite binary and no converter, or a card without a pinned sha256.
    """
    from mfsbench.device.card import require_sha256
    from mfsbench.export.card import no_tflite_reason

    require_sha256(spec)
    reason = no_tflite_reason() if tool != "ort" else None
    if reason:
        raise BadInputError(f"card {spec.name} cannot run under a TFLite benchmark_model here: {reason}; "
                            "or pass --benchmark-binary onnxruntime_perf_test to time its ONNX file")


def run_adb(args: argparse.Namespace) -> int:
    binary = Path(args.benchmark_binary) if args.benchmark_binary else None
    if binary is None or not binary.is_file():
        raise BadInputError(f"--benchmark-binary {binary or '(missing)'} is not a file; pass the Android "
                            "arm64 benchmark_model or onnxruntime_perf_test you built or downloaded")
    if args.threads < 1 or args.runs < 1 or args.warmup < 0 or args.adb_timeout <= 0:
        raise BadInputError("--threads and --runs must be ≥ 1, --warmup ≥ 0, --adb-timeout > 0")
    settings = PhoneSettings(threads=args.threads, warmup=args.warmup, runs=args.runs, delegate=args.delegate,
                             gpu_precision=args.gpu_precision, affinity=args.affinity,
                             cooldown_timeout_s=args.cooldown_timeout,
                             max_thermal_status=args.max_thermal_status, max_battery_c=args.max_battery_temp)
    settings.check(tool_of(binary))  # ORT + gpu, a --gpu-precision without the GPU: refused before any phone
    specs = frame_stage_specs(args.models, ["mobilefaceswap_224"], args.size)
    for spec in specs:
        if spec.card is not None:
            check_card_for_phone(spec, tool_of(binary))
    weights = phone_weights(args, specs)
    out = writable_dir(args.out)
    engine_name, address = getattr(args, "engine", "local"), getattr(args, "ray_address", None)
    if engine_name == "ray" or address:
        from mfsbench.engine import get_engine

        engine = get_engine(engine_name, address=address)  # --ray-address alone: refused here
        try:
            return _run(args, out, binary=binary, settings=settings, specs=specs, weights=weights,
                        serials=cluster_serials(engine, args.serial), where=engine)
        finally:
            engine.close()
    adb = Adb(timeout_s=args.adb_timeout)
    return _run(args, out, binary=binary, settings=settings, specs=specs, weights=weights,
                serials=_serials(adb, args.serial), where=adb)


def phone_weights(args: argparse.Namespace, specs: list[ModelSpec]) -> WeightsRef:
    """The zoo models' weights on the phones: ``--checkpoint`` (one zoo model) or seeded random ones
    (``--seed``), exactly as the desktop sweep takes them, so a phone times the weights its record names.

    Raises:
        BadInputError: ``--checkpoint`` with several models or with a card (whose weights are its file).
    """
    from mfsbench.device.sweep import WeightsRef

    checkpoints = tuple(getattr(args, "checkpoint", None) or ())
    if checkpoints and len(specs) != 1:
        raise BadInputError("--checkpoint loads one model's files: pass exactly one --models with it")
    if checkpoints and specs[0].card is not None:
        raise BadInputError(f"--checkpoint with card {specs[0].name}: a card's weights are its ONNX file "
                            "(files.swapper); drop --checkpoint")
    return WeightsRef(seed=None if checkpoints else getattr(args, "seed", 0), checkpoints=checkpoints)


def cluster_serials(engine: Any, wanted: list[str] | None) -> list[str]:
    """The phones of the Ray cluster (its ``adb:<serial>`` resources), or the ``--serial`` ones of them.

    Raises:
        BadInputError: no phone in the cluster, or a ``--serial`` it does not have.
    """
    from mfsbench.engine.phones import phones_of

    declared = phones_of(engine.cluster_resources())
    if not declared:
        raise BadInputError("the Ray cluster declares no phone (no adb:<serial> resource); start a node "
                            "on each phone host with `mfsbench ray-node --address HEAD`")
    unknown = [s for s in wanted or [] if s not in declared]
    if unknown:
        raise BadInputError(f"serial {', '.join(unknown)} is not a phone of the Ray cluster (it declares "
                            f"{', '.join(declared)}); run `mfsbench ray-node` on the host it is plugged into")
    return list(dict.fromkeys(wanted)) if wanted else declared


def _run(args: argparse.Namespace, out: Path, *, binary: Path, settings: PhoneSettings,
         specs: list[ModelSpec], weights: WeightsRef, serials: list[str], where: Any) -> int:
    """The run on ``serials``: through this host's adb (``where`` an :class:`Adb`) or as engine units
    (``where`` a Ray engine)."""
    described = settings.describe(binary)
    # the weights are part of what a resumed run must share (another seed or checkpoint: another run)
    described["weights"] = ({"checkpoints": list(weights.checkpoints)} if weights.checkpoints
                            else {"seed": weights.seed})
    store = out / "records.jsonl"
    stored = read_records(store) if args.resume and store.is_file() else []
    run_id, this_run = (last_run(stored, COMMAND, what="`mfsbench device --adb` run",
                                 settings_key="phone_run", wanted=described,
                                 options=PhoneSettings.options, store=store)
                        if args.resume else (new_run_id(), []))
    plan = _plan(serials, specs, args.size, this_run)
    if not any(plan.values()):
        _say(f"device --adb: every phone × model cell of run {run_id} is measured already")

    def keep(record: Record) -> None:  # run_devices serialises the calls from its device threads
        record.info["phone_run"] = described
        append_records(store, stamp([record], run_id))
        this_run.append(record)

    if isinstance(where, Adb):
        with tempfile.TemporaryDirectory(prefix="mfsbench-adb-") as work:
            wanted = [spec for spec in specs if any(spec.name in names for names in plan.values())]
            exported = {m.name: m for m in export_models(wanted, args.size, tool_of(binary), Path(work),
                                                         weights)}
            if exported:
                _say(f"device --adb: running on {', '.join(s for s, names in plan.items() if names)} ...")
            _, interrupted = run_devices(where, {serial: [exported[n] for n in names]
                                                 for serial, names in plan.items() if names},
                                         binary, settings, on_record=keep)
    else:
        interrupted = _run_units(where, plan, args, specs=specs, binary=binary, described=described,
                                 settings=settings, weights=weights, keep=keep)
    from mfsbench.report import device_android

    current = device_android.latest(this_run)  # a resumed cell's new record replaces its failed one
    sys.stdout.write(device_android.render_markdown(current))
    for path in device_android.write_reports(read_records(store), out):
        _say(f"wrote {path}")
    errors = [r for r in current if r.status == "error"]
    for record in errors:
        _say(f"error: {record.model} on {record.info.get('serial')}: {record.error}")
    if interrupted:
        done = sum(r.status == "ok" for r in current)
        _say(f"device --adb: interrupted; {done} of {len(current)} phone × model cell(s) of run {run_id} "
             f"are measured in {store}; the same command with --resume runs the rest")
        return 130
    return 1 if errors else 0


def _run_units(engine: Any, plan: dict[str, list[str]], args: argparse.Namespace, *, specs: list[ModelSpec],
               binary: Path, described: dict[str, Any], settings: PhoneSettings, weights: WeightsRef,
               keep: Callable[[Record], None]) -> bool:
    """Every phone × model of ``plan`` as one engine unit; each record kept as its unit lands.
    Returns whether Ctrl-C stopped it (the units in flight are abandoned with the driver)."""
    from device_runners.android.units import PhoneUnitTask

    units = [(serial, name) for serial, names in plan.items() for name in names]
    if not units:
        return False
    task = PhoneUnitTask(specs=tuple(s for s in specs if any(s.name in names for names in plan.values())),
                         size=args.size, binary=str(binary.resolve()),
                         binary_sha256=str(described["benchmark_binary_sha256"]), settings=settings,
                         adb_timeout_s=args.adb_timeout, engine=engine.name, weights=weights)
    _say(f"device --adb: {len(units)} phone × model unit(s) on {engine.name}, one at a time per phone: "
         f"{', '.join(s for s, names in plan.items() if names)} ...")

    def landed(unit: tuple[str, str], records: list[Record]) -> None:
        for record in records:
            keep(record)
        _say(f"device --adb: {unit[1]} on {unit[0]} ({records[0].env.get('host', '?') if records else '?'}): "
             f"{', '.join(r.status for r in records)}")

    try:
        engine.run(task, units, landed)
    except KeyboardInterrupt:
        _say("device --adb: interrupted; the units in flight are abandoned (their run dirs may remain on "
             "the phones: adb -s SERIAL shell rm -rf /data/local/tmp/mfsbench-*)")
        return True
    return False


def _plan(serials: list[str], specs: list[ModelSpec], size_arg: int | None,
          measured: list[Record]) -> dict[str, list[str]]:
    """serial → the model names it still has to run: all of them, less what a resumed run has ok."""
    done = {(str(r.info.get("serial")), r.model, int(r.info.get("size", 0)))
            for r in measured if r.status == "ok"}
    return {serial: [spec.name for spec in specs
                     if (serial, spec.name, size_arg or spec.native_size) not in done]
            for serial in serials}
