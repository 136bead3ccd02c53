"""Entry point: parse, dispatch to a command module, map known errors to one line and an exit code.

Exit codes: 0 success, 1 a measurement failed (records say which), 2 bad input (unknown model,
impossible size, unwritable directory, missing extra). Set ``MFSBENCH_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from mfsbench import __version__
from mfsbench.errors import MfsbenchError

#: command name → module under ``mfsbench.cli``, in ``--help`` order.
COMMANDS = {
    "models": "models", "flops": "flops", "report": "report", "swap": "swap", "convert": "convert",
    "export": "export", "device": "device", "quality": "quality", "ffpp-mini": "ffpp_mini",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or with just ``only`` when it names one.

    Why ``only``: command modules import what their options need (``flops`` its counting
    conventions, ``convert`` the checkpoint formats), and two of them pull in torch (~3 s on 2
    cores). A command that needs no torch, such as ``report``, should not pay that at start-up
    (commands that look models up still do: the registry imports the zoo); ``--help`` and unknown
    commands still get the full list.
    """
    parser = argparse.ArgumentParser(
        prog="mfsbench",
        description="How small, how good and how fast a face-swap network really is.",
    )
    parser.add_argument("--version", action="version", version=f"mfsbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is None or only == name:
            importlib.import_module(f"mfsbench.cli.{module}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
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
