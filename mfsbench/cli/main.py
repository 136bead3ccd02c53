"""Entry point: parse, dispatch to a command module, map known errors to one line and an exit code.

Exit codes: 0 success, 1 a measurement failed (records say which), 2 bad input (unknown model,
impossible size, unwritable directory, missing extra). Set ``MFSBENCH_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mfsbench import __version__
from mfsbench.cli import convert, device, export, ffpp_mini, flops, models, quality, report, swap
from mfsbench.errors import MfsbenchError

COMMANDS = (models, flops, report, swap, convert, export, device, quality, ffpp_mini)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mfsbench",
        description="How small, how good and how fast a face-swap network really is.",
    )
    parser.add_argument("--version", action="version", version=f"mfsbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except MfsbenchError as exc:
        if os.environ.get("MFSBENCH_DEBUG"):
            raise
        print(f"mfsbench {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mfsbench {args.command}: interrupted; results so far are in the records", file=sys.stderr)
        return 130


def console_entry() -> None:
    sys.exit(main())
