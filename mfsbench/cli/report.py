"""``mfsbench report``: re-render ``reports/`` from the JSONL records, without measuring anything.

Every report type the records hold is written again: Table 1 per convention, the desktop and phone
device reports, and Table 2 for each quality run (aggregated from its quality cache: ``OUT``'s
``quality_cache*.sqlite``, the caches the records name, or ``--cache``; a run whose cache is missing
is named in one warning line). Nothing is appended to the records, however often it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mfsbench.cli.common import writable_dir
from mfsbench.errors import BadInputError
from mfsbench.records import read_records
from mfsbench.report.render import find_quality_caches, render_reports


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--records", default=None, help="JSONL store (default: OUT/records.jsonl)")
    parser.add_argument("--out", default="reports", help="report directory (default: reports)")
    parser.add_argument("--cache", action="append", default=[], metavar="FILE",
                        help="quality cache (SQLite) to re-render Table 2 from, repeatable (default: "
                             "OUT/quality_cache*.sqlite and the caches the records name)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = writable_dir(args.out)
    records = read_records(Path(args.records) if args.records else out / "records.jsonl")
    given = [Path(path) for path in args.cache]
    for path in given:
        if not path.is_file():
            raise BadInputError(f"--cache {path} is not a file; pass the quality cache (.sqlite) of a "
                                "`mfsbench quality` run")
    caches = find_quality_caches(records, out, given)
    written, warnings = render_reports(records, out, quality_caches=caches)
    for path in written:
        print(f"wrote {path}")
    for warning in warnings:
        print(f"warning: {warning}")
    return 0
