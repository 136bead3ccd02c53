"""``mfsbench report``: re-render ``reports/`` from the JSONL records, without measuring anything."""

from __future__ import annotations

import argparse
from pathlib import Path

from mfsbench.cli.common import writable_dir
from mfsbench.records import read_records
from mfsbench.report.render import render_reports


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", default=None, help="JSONL store (default: OUT/records.jsonl)")
    parser.add_argument("--out", default="reports", help="report directory (default: reports)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = writable_dir(args.out)
    records = read_records(Path(args.records) if args.records else out / "records.jsonl")
    written, warnings = render_reports(records, out)
    for path in written:
        print(f"wrote {path}")
    for warning in warnings:
        print(f"warning: {warning}")
    return 0
