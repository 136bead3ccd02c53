"""``mfsbench quality``: ID retrieval, pose error and FID on FaceForensics++ under a pinned protocol.

Everything is cached in one SQLite file (``--cache``, default ``OUT/quality_cache.sqlite``): a killed
run resumes where it stopped, a finished one re-renders in seconds, ``--shard i/n`` splits the pairs
across machines and ``--merge SHARD.sqlite ...`` combines their caches into ``--cache`` and renders
the merged table. Reports: ``OUT/table2_quality.{md,csv}``, ``OUT/table2_quality_flops_vs_id.png``,
records in ``OUT/records.jsonl``.

Beyond one machine: ``--engine ray`` (``--ray-address ADDR`` for a cluster) runs each work item as a
Ray task that publishes ``<--results-url>/<fingerprint>.parquet``; the driver skips published items
and renders from the folder (``--merge FOLDER`` does too). See :mod:`mfsbench.quality.units`.

An incomplete FF++ copy (a split file missing, broken or missing videos, ids in two splits) is
refused, every problem listed, unless ``--allow-incomplete``: then the report is marked incomplete
with what was left out. One run at a time per cache: a second one on the same cache is refused,
naming the pid that holds it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from mfsbench.cli.common import add_engine_options, add_license_option, add_list_option, apply_license_option
from mfsbench.errors import BadInputError

CALIBRATION = ("identity_oracle", "target_copy")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--dataset", choices=("ffpp",), default="ffpp", help="dataset layout (ffpp)")
    parser.add_argument("--root", help="FF++ root (holds original_sequences/ and manipulated_sequences/)")
    parser.add_argument("--splits-dir", help="folder with FaceForensics' train/val/test.json split files")
    parser.add_argument("--subset", choices=("all", "train", "val", "test"), default=None,
                        help="targets to evaluate (default: the protocol's, all 1000 ids for ffpp_v1)")
    parser.add_argument("--compression", default=None, help="raw|c23|c40 (default: the protocol's, c23)")
    parser.add_argument("--protocol", default="ffpp_v1", help="protocol name or TOML file (default ffpp_v1)")
    add_list_option(parser, "--models", default=[],
                    help="zoo models with a swap pipeline; the calibration rows always run: "
                         "identity_oracle (source video's face pasted in: near-duplicate ceiling) "
                         "and target_copy (target re-encoded as JPEG: the retrieval floor, returns "
                         "the target)")
    add_list_option(parser, "--methods", metavar="METHOD",
                    help="FF++ methods read from manipulated_sequences (default: every method present; "
                         "'none' for none)")
    parser.add_argument("--video-mode", action="store_true",
                        help="inject the source once per target video (default: image mode, once per frame)")
    parser.add_argument("--evaluators", choices=("official", "offline"), default="official",
                        help="official (CosFace, Hopenet, Inception; user-supplied weights) or offline "
                             "(registry-installed recogniser and landmark pose; own column names, and "
                             "the card's evaluator fields rewritten to them: another fingerprint)")
    parser.add_argument("--identity-groups", default=None, metavar="FILE",
                        help="JSON list of lists of video ids showing one person, for identity-grouped "
                             "top-1 (protocol setting identity_groups; default: the protocol's, none)")
    parser.add_argument("--cosface-weights", help="CosFace sphere20 state dict (ID retrieval)")
    parser.add_argument("--hopenet-weights", help="hopenet_robust_alpha1 state dict (pose)")
    parser.add_argument("--inception-weights", help="pt_inception-2015-12-05 state dict (FID)")
    parser.add_argument("--evaluator-config", help="JSON or TOML file with cosface/hopenet/inception paths")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                        help="official checkpoint of a zoo model (repeat per file; MODEL=FORMAT=PATH works)")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime"), default=None,
                        help="what runs a zoo model's frame stage: torch (default) or onnxruntime (exported "
                             "once per source identity to the per-user cache, as swap --runtime does: rows "
                             "of their own, labelled [onnxruntime]); a card always runs in onnxruntime")
    parser.add_argument("--allow-random-weights", action="store_true",
                        help="run zoo models without checkpoints; rows are labelled random-weights")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights (default 0)")
    parser.add_argument("--shard", default=None, metavar="i/n", help="evaluate every n-th pair from the i-th")
    parser.add_argument("--cache", default=None,
                        help="SQLite cache (default OUT/quality_cache[.shard-i-of-n].sqlite)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="STORE",
                        help="merge shard caches (.sqlite) and/or published unit folders (--results-url) "
                             "into --cache and render the merged report (no evaluation)")
    add_engine_options(parser, local="work items in this process",
                       ray="Ray tasks with retries, each item published to --results-url")
    parser.add_argument("--results-url", default=None, metavar="URL",
                        help="folder or fsspec URL where each work item is published as "
                             "<fingerprint>.parquet (default OUT/units with --engine ray; with --engine "
                             "local, giving it runs the same published units in this process)")
    parser.add_argument("--node-cache", default=None, metavar="PATH",
                        help="each node's own SQLite cache for published runs ({host} is replaced by the "
                             "node's host name; default OUT/quality_cache.node-{host}.sqlite; on a cluster "
                             "use a local disk: SQLite cannot be shared across hosts)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="intra-op threads of every swap and evaluator (default: torch's here). Float "
                             "results depend on it in the last digits, so each engine unit runs with the "
                             "same N and a Ray unit reserves N CPUs: --engine ray then reproduces a local "
                             "table digit for digit")
    parser.add_argument("--out", default="reports", help="folder for reports and records (default reports)")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="evaluate an FF++ copy with problems (missing split files or videos, broken "
                             "videos, ids in two splits): the report is marked incomplete and lists what "
                             "was left out (without it such a copy is refused, exit 2)")
    parser.add_argument("--protocol-card", action="store_true", help="print the protocol card and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_license_option(parser)
    parser.set_defaults(run=run)


def _model_names(flags: list[str]) -> list[str]:
    names = [part.strip() for flag in flags for part in flag.split(",") if part.strip()]
    return list(dict.fromkeys(names))


def _checkpoints(flags: list[str], models: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for flag in flags:
        model, sep, rest = flag.partition("=")
        if not sep or not rest:
            raise BadInputError(f"--checkpoint {flag!r} is not MODEL=PATH "
                                "(e.g. mobilefaceswap_224=mobilefaceswap_224.pdparams)")
        if model not in models:
            raise BadInputError(f"--checkpoint names {model!r}, which is not in --models; "
                                "add it or drop the flag")
        out.setdefault(model, []).append(rest)
    return out


def _gmacs(spec: Any, mode: str) -> float | None:
    """Per-frame MACs of a spec in a mode, from the counts ``test_zoo_specs`` recomputes."""
    expected = spec.expected
    if expected is None or expected.frame_flops is None:
        return None
    if mode == "video" or "identity" not in spec.stage_names:  # no identity stage: image = frame only
        return expected.frame_flops / 1e9
    if expected.identity_flops is None:
        return None
    return (expected.identity_flops + expected.frame_flops) / 1e9


def _row_runtime(runtime: str | None, spec: Any) -> str | None:
    """``--runtime`` for one model: None where it is the model's own runtime (the row keeps its key).

    Raises:
        BadInputError: ``--runtime torch`` for a model card (its graph is ONNX).
    """
    if spec.card is not None:
        if runtime == "torch":
            raise BadInputError(f"{spec.name} is a model card: it runs in onnxruntime only; "
                                "drop --runtime torch")
        return None
    return "onnxruntime" if runtime == "onnxruntime" else None


#: Which mfsbench architecture an FF++ method's videos came from (for the FLOPs axis only).
METHOD_SPECS = {"Deepfakes": "deepfakes_64", "FaceShifter": "faceshifter_256"}


def _rows(args: argparse.Namespace, tree: Any, compression: str) -> list[Any]:
    from mfsbench.cards.weights import weights_flags
    from mfsbench.checkpoints.digest import sha256_file
    from mfsbench.quality.runner import calibration_rows, method_row, zoo_row
    from mfsbench.registry import get_spec
    from mfsbench.swap.adapters import adapter_for

    rows = calibration_rows()
    models = [m for m in _model_names(args.models) if m not in CALIBRATION]
    ckpts = _checkpoints(args.checkpoint, models)
    mode = "video" if args.video_mode else "image"
    for name in models:
        spec = get_spec(name)
        adapter_for(spec)
        runtime = _row_runtime(args.runtime, spec)  # an impossible runtime before any weights question
        flags = weights_flags(spec, ckpts.get(name, []))  # a weights card's own files
        card = spec.card
        # a card that ships its own identity encoder runs no random network without --checkpoint
        own_encoder = card is not None and card.card.identity.encoder in card.paths
        if not flags and not args.allow_random_weights and not own_encoder:
            raise BadInputError(f"{name} needs its official checkpoints (--checkpoint {name}=PATH ...); "
                                "pass --allow-random-weights to evaluate untrained weights (labelled so)")
        paths = [Path(f.partition("=")[2] if "=" in f else f) for f in flags]
        for path in paths:
            if not path.is_file():
                raise BadInputError(f"checkpoint not found: {path}; check the --checkpoint path")
        if paths:
            weights = "+".join(sha256_file(p) for p in paths)
        else:
            weights = "card-encoder" if own_encoder else f"random-weights:{args.seed}"
        if card is not None:  # the swapper's own digest: an edited ONNX is a new row, never a cached one
            weights += f"+card:{card.sha256['swapper'][:16]}"
        own = "torch" if card is None else "onnxruntime"
        rows.append(zoo_row(name, mode, weights, checkpoints=flags, seed=args.seed, gmacs=_gmacs(spec, mode),
                            runtime=runtime or own, own_runtime=own))
    present = tree.methods()
    if args.methods is None:
        methods = present
    elif [m.lower() for m in args.methods] == ["none"]:
        methods = []
    else:
        methods = list(args.methods)
        unknown = [m for m in methods if m not in present]
        if unknown:
            raise BadInputError(f"--methods {', '.join(unknown)} not under {args.root}/manipulated_sequences "
                                f"(present: {', '.join(present) or 'none'}); pick from those")
    for method in methods:
        spec_name = METHOD_SPECS.get(method)
        gmacs = _gmacs(get_spec(spec_name), "image") if spec_name else None
        rows.append(method_row(method, compression, gmacs))
    return rows


def _evaluator_paths(args: argparse.Namespace) -> dict[str, Path | None]:
    paths: dict[str, Any] = {"cosface": args.cosface_weights, "hopenet": args.hopenet_weights,
                             "inception": args.inception_weights}
    if args.evaluator_config:
        config_path = Path(args.evaluator_config)
        if not config_path.is_file():
            raise BadInputError(f"--evaluator-config {config_path} not found; check the path")
        text = config_path.read_text(encoding="utf-8")
        try:
            if config_path.suffix == ".toml":
                import tomllib

                config = tomllib.loads(text)
            else:
                config = json.loads(text)
        except ValueError as exc:
            raise BadInputError(f"--evaluator-config {config_path} is not valid ({exc}); "
                                "write {\"cosface\": PATH, \"hopenet\": PATH, \"inception\": PATH}") from None
        unknown = set(config) - set(paths)
        if unknown:
            raise BadInputError(f"--evaluator-config has unknown keys {sorted(unknown)}; "
                                "use cosface, hopenet, inception")
        for key, value in config.items():
            if paths[key] is None:
                paths[key] = str((config_path.parent / value) if not Path(value).is_absolute() else value)
    return {k: Path(v) if v else None for k, v in paths.items()}


def _render(store: Any, out: Path, fingerprint: str, evalset: str, *, stem: str,
            extra: list[Any] | None = None, show_problems: bool = False) -> int:
    """Write the reports and the new records (one writer at a time per ``--out``).

    ``show_problems`` prints the run's dataset problems (``--merge``: the shard runs printed theirs).
    """
    from mfsbench.quality.lock import records_turn
    from mfsbench.records import append_records, new_run_id, read_records, stamp
    from mfsbench.report.render import unrecorded
    from mfsbench.report.table2 import to_records, write_reports

    records_path = out / "records.jsonl"
    with records_turn(records_path, "quality"):
        written, warnings, header, rows = write_reports(store, out, fingerprint, evalset, stem)
        stored = read_records(records_path) if records_path.is_file() else []
        fresh = unrecorded(stored, to_records(header, rows)) + (extra or [])  # unchanged table: nothing new
        append_records(records_path, stamp(fresh, new_run_id()))
    for row in rows:
        print(f"{row.key:<52} ID {_fmt(row.id_top1_pct)} %  cos {_fmt(row.id_cos, 3)}  "
              f"pose {_fmt(row.pose_err)}  FD {_fmt(row.fd)} (N={row.fd_n})  "
              f"frames {row.frames_ok} ok / {row.frames_skipped} skipped")
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if show_problems:
        _print_problems(header.problems, str(header.run.get("root", "the dataset")))
    if header.problems:
        print(f"warning: the report is marked INCOMPLETE: {len(header.problems)} dataset problem(s) "
              "left things out (listed in it)", file=sys.stderr)
    return 0


def _print_problems(problems: list[Any], where: str) -> None:
    from mfsbench.quality.problems import console_lines

    for line in console_lines(problems, where):
        print(line, file=sys.stderr)


def _fmt(value: float | None, digits: int = 2) -> str:
    from mfsbench.report.table2 import format_number

    return format_number(value, digits)


def _merge(args: argparse.Namespace, out: Path) -> int:
    from mfsbench.quality.lock import hold_cache
    from mfsbench.quality.store import QualityStore, merge

    cache = Path(args.cache) if args.cache else out / "quality_cache.sqlite"
    folders = [m for m in args.merge if "://" in m or Path(m).is_dir()]
    stores = [m for m in args.merge if m not in folders]
    with hold_cache(cache, "quality --merge"):
        counts = merge(cache, stores)
        if folders:
            counts = _merge_folders(cache, folders)
        print(f"merged {len(args.merge)} store(s) into {cache}: {counts['items']} work items",
              file=sys.stderr)
        with QualityStore(cache) as store:
            runs = [k for (k,) in
                    store.db.execute("SELECT key FROM meta WHERE key LIKE 'run:%' ORDER BY key")]
            if not runs:
                raise BadInputError("the merged stores hold no quality run; "
                                    "pass the --cache files of shard runs")
            for number, key in enumerate(runs):
                _, fingerprint, evalset = key.split(":", 2)
                stem = "table2_quality" if number == 0 else f"table2_quality_{number}"
                _render(store, out, fingerprint, evalset, stem=stem, show_problems=True)
    return 0


def _merge_folders(cache: Path, urls: list[str]) -> dict[str, int]:
    """Import every unit published under ``urls`` into ``cache``; returns its row counts."""
    from mfsbench.engine.publish import ResultFolder
    from mfsbench.quality.store import QualityStore
    from mfsbench.quality.units import import_units

    with QualityStore(cache) as store:
        for url in urls:
            folder = ResultFolder(url)
            names = folder.names()
            if not names:
                raise BadInputError(f"no published unit under {url}; pass the --results-url of a run")
            import_units(store, folder, names)
            print(f"read {len(names)} published unit(s) from {url}", file=sys.stderr)
        return store.counts()


def run(args: argparse.Namespace) -> int:
    from mfsbench.cli.common import writable_dir
    from mfsbench.quality.protocol import load_protocol

    apply_license_option(args)

    overrides = {k: v for k, v in (("compression", args.compression), ("subset", args.subset),
                                   ("identity_groups", args.identity_groups)) if v}
    if args.protocol_card:
        protocol = load_protocol(args.protocol, **overrides)
        if args.evaluators == "offline":  # the card an offline run would head its report with
            from mfsbench.quality.card import card_for
            from mfsbench.quality.evaluators import build_evaluators

            protocol = card_for(protocol, build_evaluators("offline", flip_concat=protocol.id_flip_concat))
        print(protocol.card())
        return 0
    out = writable_dir(args.out)
    if args.merge:
        return _merge(args, out)
    if not args.root or not args.splits_dir:
        raise BadInputError("mfsbench quality needs --root (the FF++ folder) and --splits-dir "
                            "(FaceForensics' dataset/splits); or --protocol-card / --merge")
    root = Path(args.root)
    if not root.is_dir():
        raise BadInputError(f"--root {root} is not a directory; pass the FF++ folder that holds "
                            "original_sequences/ (build a miniature one with `mfsbench ffpp-mini DIR`)")
    try:
        return _evaluate(args, out, root, load_protocol(args.protocol, **overrides))
    except sqlite3.OperationalError as exc:  # short transactions and the cache lock should prevent it
        raise BadInputError(f"the quality cache could not be used ({exc}); if another process holds "
                            "it, wait for it to finish or pass another --out or --cache") from None


def pipeline_record(summary: Any, cache: Path, shard: tuple[int, int]) -> Any:
    """The evaluation pipeline's cost, every figure over this invocation's own work only.

    ``seconds`` is this run's wall time, ``fps`` its evaluated frames over it, and the stage seconds
    and ``outside_inference_share`` sum the work items this run wrote (items found in the cache,
    from earlier runs, are in none of them).
    """
    from mfsbench.quality.runner import outside_share
    from mfsbench.records import Record

    metrics = {f"{stage}_s": s for stage, (s, _) in summary.timings.items()}
    metrics["seconds"] = summary.seconds
    metrics["fps"] = summary.frames_evaluated / max(summary.seconds, 1e-9)
    share = outside_share(summary.timings)
    if share is not None:
        metrics["outside_inference_share"] = share
    return Record(command="quality", model="pipeline", stage="all", metrics=metrics,
                  info={"cache": str(cache), "shard": list(shard),
                        "frames_evaluated": summary.frames_evaluated, "items_run": summary.items_run,
                        "items_cached": summary.items_cached,
                        "scope": "this invocation only: its wall time, its evaluated frames and the stage "
                                 "seconds of the work items it wrote (cached items excluded)"})


def _check_tree(args: argparse.Namespace, tree: Any, root: Path, subset: str,
                compression: str) -> tuple[list[Any], list[Any]]:
    """Table 2's rows and the tree's problems for them, printed; refused unless ``--allow-incomplete``.

    Raises:
        BadInputError: nothing to evaluate, or problems without ``--allow-incomplete``.
    """
    pairs = tree.pairs(subset)
    if not pairs:
        problems = tree.problems(subset)
        _print_problems(problems, str(root))
        detail = f"{len(problems)} dataset problem(s), listed above" if problems else f"no pairs in {subset}"
        raise BadInputError(f"nothing to evaluate under {root} (subset {subset}): {detail}; "
                            "pass the FF++ folder and FaceForensics' split files")
    rows = _rows(args, tree, compression)
    problems = tree.problems(subset, methods=[r.method for r in rows if r.kind == "method"])
    _print_problems(problems, str(root))
    if problems and not args.allow_incomplete:
        raise BadInputError(f"the FF++ copy under {root} is incomplete ({len(problems)} problem(s), listed "
                            "above); fix them, or pass --allow-incomplete to evaluate what is there (the "
                            "report is then marked incomplete and lists what was left out)")
    return rows, problems


def _evaluate(args: argparse.Namespace, out: Path, root: Path, protocol: Any) -> int:
    """Evaluate with ``--threads`` pinned for the run (restored after: the CLI may run in-process)."""
    from mfsbench.engine import pinned_threads

    with pinned_threads(args.threads) as threads:  # None: no --threads (torch left as it is, unimported)
        return _evaluate_pinned(args, out, root, protocol, threads)


def _evaluate_pinned(args: argparse.Namespace, out: Path, root: Path, protocol: Any,
                     threads: int | None) -> int:
    from mfsbench.quality.card import card_for
    from mfsbench.quality.evaluators import build_evaluators
    from mfsbench.quality.ffpp import FFppTree
    from mfsbench.quality.lock import hold_cache
    from mfsbench.quality.problems import found_while_decoding
    from mfsbench.quality.runner import QualityRunner, evalset_key, parse_shard
    from mfsbench.quality.store import QualityStore

    shard = parse_shard(args.shard)
    tree = FFppTree(root, Path(args.splits_dir), protocol.compression)
    rows, problems = _check_tree(args, tree, root, protocol.subset, protocol.compression)
    evaluators = build_evaluators(args.evaluators, **_evaluator_paths(args),
                                  flip_concat=protocol.id_flip_concat, fid_crop_size=protocol.fid_crop_size)
    if args.evaluators == "offline":  # the card names what runs: never the official fingerprint
        protocol = card_for(protocol, evaluators)
    if evaluators.identity is None and evaluators.pose is None and evaluators.features is None:
        reasons = "; ".join(evaluators.disabled.values())
        raise BadInputError(f"every metric is disabled ({reasons}); pass the evaluator weights or "
                            "--evaluators offline")
    for reason in evaluators.disabled.values():
        print(f"warning: metric disabled: {reason}", file=sys.stderr)
    suffix = "" if shard == (0, 1) else f".shard-{shard[0]}-of-{shard[1]}"
    cache = Path(args.cache) if args.cache else out / f"quality_cache{suffix}.sqlite"
    fingerprint, evalset = protocol.fingerprint(), evalset_key(evaluators)
    stem = "table2_quality" if shard == (0, 1) else f"table2_quality_shard-{shard[0]}-of-{shard[1]}"
    if args.engine == "ray" or args.results_url:
        return _evaluate_units(args, out, root, protocol, tree=tree, rows=rows, problems=problems,
                               evaluators=evaluators, shard=shard, cache=cache, stem=stem, threads=threads)
    if args.ray_address:
        raise BadInputError("--ray-address needs --engine ray; drop it or add --engine ray")
    with hold_cache(cache, "quality"), QualityStore(cache) as store:
        runner = QualityRunner(protocol=protocol, tree=tree, store=store, rows=rows, evaluators=evaluators,
                               subset=protocol.subset, shard=shard, progress=not args.no_progress,
                               info={"root": str(root), "dataset_problems": [p.to_dict() for p in problems]})
        summary = runner.run()
        print(f"{summary.items_run} work item(s) evaluated, {summary.items_cached} from the cache "
              f"({cache}), {summary.frames_evaluated} frame(s) in {summary.seconds:.1f} s", file=sys.stderr)
        found = found_while_decoding(store, fingerprint, evalset, problems)
        _print_problems(found, f"{root} (found while decoding)")
        extra = [pipeline_record(summary, cache, shard)] if summary.items_run else []
        _render(store, out, fingerprint, evalset, stem=stem, extra=extra)
    if found and not args.allow_incomplete:
        raise BadInputError(f"{len(found)} video(s) under {root} could not be used (listed above); "
                            f"{out / stem}.md is marked incomplete. Fix them, or pass --allow-incomplete to "
                            "accept (a re-run renders from the cache in seconds)")
    return 0


def _evaluate_units(args: argparse.Namespace, out: Path, root: Path, protocol: Any, *, tree: Any,
                    rows: list[Any], problems: list[Any], evaluators: Any, shard: tuple[int, int],
                    cache: Path, stem: str, threads: int | None) -> int:
    """The run as engine units: each work item published to ``--results-url``, then rendered here.

    Units already published are skipped (the resume of a killed driver); the folder is then read
    into ``cache`` and rendered by the same code as a local run.
    """
    import time

    from mfsbench.engine import get_engine, pin_threads
    from mfsbench.engine.publish import ResultFolder
    from mfsbench.quality.lock import hold_cache
    from mfsbench.quality.problems import found_while_decoding
    from mfsbench.quality.runner import QualityRunner, RunSummary
    from mfsbench.quality.store import QualityStore
    from mfsbench.quality.units import QualityUnitTask, fit_unit_threads, import_units, unit_name

    url = args.results_url or str(out / "units")
    node_cache = args.node_cache or str(out / "quality_cache.node-{host}.sqlite")
    info = {"root": str(root), "dataset_problems": [p.to_dict() for p in problems]}
    folder = ResultFolder(url)
    started = time.perf_counter()
    with hold_cache(cache, "quality"), QualityStore(cache) as store:
        runner = QualityRunner(protocol=protocol, tree=tree, store=store,
                               rows=rows, evaluators=evaluators, subset=protocol.subset, shard=shard,
                               progress=False, info=info)
        with store.transaction():
            runner.write_header()
        units = runner.units()
        names = {unit: unit_name(runner.fp, runner.evalset, unit) for unit in units}
        published = folder.names()
        todo = [u for u in units if names[u] not in published]
        paths = _evaluator_paths(args)
        task = QualityUnitTask(
            root=str(root.resolve()), splits_dir=str(Path(args.splits_dir).resolve()), protocol=protocol,
            rows=tuple(rows), evaluators=args.evaluators,
            evaluator_paths=tuple((k, str(v.resolve()) if v else None) for k, v in sorted(paths.items())),
            subset=protocol.subset, node_cache=str(Path(node_cache).absolute()), results_url=url,
            info_json=json.dumps(info, sort_keys=True), threads=threads or pin_threads(None))
        summary = RunSummary(items_total=len(units), items_cached=len(units) - len(todo))
        timings: dict[str, list[float]] = {}
        computed = 0
        ran_threads: set[int] = set()

        def done(unit: Any, outcome: dict[str, Any]) -> None:
            nonlocal computed
            computed += int(outcome["computed"])
            ran_threads.add(int(outcome["threads"]))
            summary.items_run += 1
            summary.frames_evaluated += outcome["frames"]
            for stage, (seconds, calls) in outcome["timings"].items():
                total = timings.setdefault(stage, [0.0, 0])
                total[0] += seconds
                total[1] += calls
            if not args.no_progress:
                print(f"unit {summary.items_run}/{len(todo)} published: {unit[0]}_{unit[1]} {unit[2]}",
                      file=sys.stderr)

        if todo:
            engine = get_engine(args.engine, address=args.ray_address)
            try:
                fitted = fit_unit_threads(engine, task.threads, explicit=args.threads is not None)
                engine.run(dataclasses.replace(task, threads=fitted), todo, done)
            finally:
                engine.close()
        summary.seconds = time.perf_counter() - started
        summary.timings = {k: (v[0], int(v[1])) for k, v in timings.items()}
        missing = [u for u in units if names[u] not in folder.names()]
        if missing:
            raise BadInputError(f"{len(missing)} unit(s) were not published to {url} (first: {missing[0]}); "
                                "re-run the same command to finish them")
        import_units(store, folder, names.values())
        print(f"{len(todo)} unit(s) run on {args.engine} ({computed} computed, {len(todo) - computed} from a "
              f"node cache), {summary.items_cached} already published under {url}; "
              f"{summary.frames_evaluated} frame(s) in {summary.seconds:.1f} s", file=sys.stderr)
        found = found_while_decoding(store, runner.fp, runner.evalset, problems)
        _print_problems(found, f"{root} (found while decoding)")
        record = pipeline_record(summary, cache, shard) if summary.items_run else None
        if record is not None:
            record.info.update({"engine": args.engine, "results_url": url, "units_run": len(todo),
                                "unit_threads": sorted(ran_threads)})  # as the workers read it back
        _render(store, out, runner.fp, runner.evalset, stem=stem, extra=[record] if record else [])
    if found and not args.allow_incomplete:
        raise BadInputError(f"{len(found)} video(s) under {root} could not be used (listed above); "
                            f"{out / stem}.md is marked incomplete. Fix them, or pass --allow-incomplete to "
                            "accept (a re-run renders from the cache in seconds)")
    return 0

