"""``mfsbench flops``: parameters and FLOPs per stage and per mode, in Table 1's layout.

Every model's records are appended to ``OUT/records.jsonl`` as soon as it is counted, so an
interrupted run keeps what it measured; the reports are then re-rendered from the whole store.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from mfsbench.cli.common import (
    add_engine_options,
    add_license_option,
    add_list_option,
    apply_license_option,
    resolve_models,
    writable_dir,
)
from mfsbench.conventions import CONVENTIONS
from mfsbench.records import append_records, environment, new_run_id, read_records, stamp
from mfsbench.registry import ModelSpec, ModeName
from mfsbench.report import table1
from mfsbench.report.render import render_reports


def configure(parser: argparse.ArgumentParser) -> None:
    add_list_option(parser, "--models",
                    help="model names or model-card paths (*.toml) (default: the whole zoo)")
    parser.add_argument(
        "--size", type=int, default=None, help="frame size (default: each model's native size)"
    )
    parser.add_argument("--mode", choices=("image", "video", "both"), default="both",
                        help="image (every stage, per frame), video (the frame stage alone) or both "
                             "(default: both)")
    parser.add_argument(
        "--convention",
        choices=CONVENTIONS,
        default="paper",
        help="counting rules (default: paper, the fvcore rules of spring 2021)",
    )
    parser.add_argument("--format", choices=("table", "md", "csv", "json"), default="table",
                        help="what this run prints on stdout; the files under OUT are written either way "
                             "(default: table)")
    add_license_option(parser)
    parser.add_argument(
        "--out", default="reports", help="directory for records and reports (default: reports)"
    )
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[FORMAT=]PATH",
                        help="weights of the one --models counted, as for swap (official files or "
                             ".safetensors, e.g. a distilled student): loaded strictly to prove they fit "
                             "the architecture counted, and recorded by sha256")
    add_engine_options(parser, local="models counted one after another here",
                       ray="one Ray task per model")
    parser.set_defaults(run=run)


class CountUnit:
    """One model counted (the unit of ``--engine ray``): settings only, the model is built by the worker."""

    def __init__(self, size: int | None, convention: str, modes: tuple[ModeName, ...]) -> None:
        self.size, self.convention, self.modes = size, convention, modes

    def __call__(self, spec: ModelSpec) -> list[Any]:
        """The unstamped records of ``spec``, with the seconds its count took on the worker."""
        from mfsbench.flops import measure

        started = time.perf_counter()
        if spec.card is not None:
            from mfsbench.cards.count import measure_card

            records = measure_card(spec, self.modes)
        else:
            records = measure(spec, self.size or spec.native_size, self.convention, self.modes)
        for record in records:
            record.info["seconds"] = round(time.perf_counter() - started, 2)
            record.env = environment()  # the worker's machine, not the driver's
        return records


def _count_on_engine(args: argparse.Namespace, specs: list[ModelSpec], modes: tuple[ModeName, ...],
                     run_id: str, checkpoints: list[dict[str, Any]]) -> list[Any]:
    """Every model as one engine unit; records appended as each lands, returned in ``specs`` order."""
    from mfsbench.engine import get_engine

    store = writable_dir(args.out) / "records.jsonl"
    engine = get_engine(args.engine, address=args.ray_address)
    done: dict[str, list[Any]] = {}

    written = 0

    def publish(spec: ModelSpec, records: list[Any]) -> None:
        """Append in ``specs`` order (the reports follow the store's order, as a local run's do), each
        model as soon as every model before it has landed."""
        nonlocal written
        for record in stamp(records, run_id):
            if checkpoints:
                record.info["checkpoints"] = checkpoints
        done[spec.name] = records
        while written < len(specs) and specs[written].name in done:
            append_records(store, done[specs[written].name])
            written += 1

    try:
        engine.run(CountUnit(args.size, args.convention, modes), specs, publish)
    finally:
        engine.close()
    return [record for spec in specs for record in done.get(spec.name, [])]


def _verify_checkpoints(specs: list[ModelSpec], flags: list[str]) -> list[dict[str, Any]]:
    """Load ``flags`` into the one model counted (the swap command's strict loader), for the records.

    Counts depend on shapes only, so the weights change no figure; loading them proves the file is
    the architecture the figures describe, and the sha256 ties the counts to those weights.
    """
    if not flags:
        return []
    from mfsbench.errors import BadInputError

    if len(specs) != 1 or not specs[0].runnable or specs[0].card is not None:
        raise BadInputError("--checkpoint loads one zoo model's files: "
                            "pass exactly one runnable --models with it")
    from mfsbench.counting import cheap_init
    from mfsbench.registry import create_model
    from mfsbench.swap.checkpoints import load_checkpoints

    with cheap_init():  # every weight is overwritten by the load
        model = create_model(specs[0].name)
    return [vars(c) for c in load_checkpoints(specs[0], model, flags)]


def run(args: argparse.Namespace) -> int:
    from mfsbench.flops import measure

    apply_license_option(args)
    specs = resolve_models(args.models)
    if args.size is not None:
        for spec in specs:
            if spec.runnable or spec.card is not None:
                spec.check_size(args.size)
    checkpoints = _verify_checkpoints(specs, args.checkpoint)
    out = writable_dir(args.out)
    modes: tuple[ModeName, ...] = ("image", "video") if args.mode == "both" else (args.mode,)
    store = out / "records.jsonl"
    run_id = new_run_id()
    by_engine = args.engine == "ray" or bool(args.ray_address)  # the loop below is the local path
    this_run = _count_on_engine(args, specs, modes, run_id, checkpoints) if by_engine else []
    for spec in [] if by_engine else specs:
        started = time.perf_counter()
        size = args.size or spec.native_size
        print(f"counting {spec.name} @ {size} ...", file=sys.stderr, flush=True)
        if spec.card is not None:  # counted on its ONNX graph, always in the macs convention
            from mfsbench.cards.count import measure_card

            records = stamp(measure_card(spec, modes), run_id)
        else:
            records = stamp(measure(spec, size, args.convention, modes), run_id)
        for record in records:
            record.info["seconds"] = round(time.perf_counter() - started, 2)
            if checkpoints:
                record.info["checkpoints"] = checkpoints
        append_records(store, records)
        this_run += records
    # a card's graph is counted in macs whatever --convention says; a weights card is a zoo architecture
    graph = {id(r) for r in this_run if "card" in r.info and r.info.get("card_format") != "safetensors"}
    rows = table1.latest_rows([r for r in this_run if id(r) not in graph], args.convention)
    rows += table1.latest_rows([r for r in this_run if id(r) in graph], "macs")
    renderers = {
        "table": table1.render_terminal,
        "md": lambda r: table1.render_markdown(r, f"Table 1 ({args.convention} convention)"),
        "csv": table1.render_csv,
        "json": table1.render_json,
    }
    print(renderers[args.format](rows))
    written, warnings = render_reports(read_records(store), out)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    errors = [r for r in this_run if r.status == "error"]
    for record in errors:
        print(f"error: {record.model} ({record.mode}): {record.error}", file=sys.stderr)
    return 1 if errors else 0
