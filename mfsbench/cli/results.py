"""``mfsbench results``: every record as one table (pandas), printed or written as CSV or Parquet.

One row per record, flat columns (``metrics.fps``, ``info.video.width``, ``env.git_commit``; see
:mod:`mfsbench.results`), from one or more JSONL stores. Filters select rows; nothing is computed,
rounded or dropped, so a notebook reading the file sees exactly what the commands recorded.
In Python: ``mfsbench.results.read_results([Path("reports/records.jsonl")])`` returns the same frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mfsbench.cli.common import add_list_option
from mfsbench.errors import BadInputError

#: Columns printed on the console (all are written to --out).
SUMMARY_COLUMNS = ("run_id", "command", "model", "stage", "mode", "status")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_list_option(parser, "--records", metavar="STORE", default=["reports/records.jsonl"],
                    help="JSONL record store(s) to read (default: reports/records.jsonl)")
    add_list_option(parser, "--commands", help="keep only records of these commands (flops, device, ...)")
    add_list_option(parser, "--models", help="keep only records of these models")
    add_list_option(parser, "--status", metavar="STATUS",
                    help="keep only records with these statuses (ok, skipped, error)")
    parser.add_argument("--run-id", default=None, help="keep only the records of this run")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="write every column to FILE.csv or FILE.parquet (Parquet: the tables extra)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mfsbench.results import read_results, write_table

    frame = read_results([Path(path) for path in args.records])
    selected = frame
    filters = (("command", "--commands", args.commands), ("model", "--models", args.models),
               ("status", "--status", args.status),
               ("run_id", "--run-id", [args.run_id] if args.run_id else None))
    for column, flag, wanted in filters:
        if wanted:
            known = set(frame[column].dropna())
            unknown = [value for value in wanted if value not in known]
            if unknown:
                held = ", ".join(sorted(known)) if len(known) <= 12 else f"{len(known)} others"
                raise BadInputError(f"{flag} {', '.join(unknown)}: not in the store(s), "
                                    f"which hold {held or 'none'}")
            selected = selected[selected[column].isin(list(wanted))]
    if args.out:
        write_table(selected, Path(args.out))
        print(f"wrote {args.out}: {len(selected)} record(s), {len(selected.columns)} column(s)")
        return 0
    with _wide_console():
        print(selected[list(SUMMARY_COLUMNS)].to_string(index=False))
    print(f"{len(selected)} record(s), {len(selected.columns)} column(s); --out FILE.csv|.parquet writes all")
    return 0


def _wide_console():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_colwidth", 60, "display.max_rows", None)
