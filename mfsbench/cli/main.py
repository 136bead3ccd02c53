"""Entry point: parse, dispatch to a command module, map known errors to one line and an exit code.

Exit codes: 0 success, 1 a measurement failed (records say which), 2 bad input (unknown model,
impossible size, unwritable directory, missing extra), 130 interrupted, 141 stdout's reader closed
the pipe early (``mfsbench models | head -1``: the rest of the output is dropped quietly).
Set ``MFSBENCH_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from mfsbench import __version__
from mfsbench.errors import MfsbenchError

#: command name → (module under ``mfsbench.cli``, one-line help), in ``--help`` order.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("models", "list the model zoo"),
    "flops": ("flops", "parameters and FLOPs per stage and mode (Table 1)"),
    "report": ("report", "re-render markdown/CSV/plots from records.jsonl"),
    "swap": ("swap", "swap a source face into a target image or video"),
    "convert": ("convert", "official checkpoint → .safetensors / weights-only .pt, read without running it"),
    "export": ("export", "export a model stage to onnx/openvino/tflite, with parity"),
    "device": ("device", "export, check parity and time frame stages on this machine"),
    "quality": ("quality", "ID retrieval, pose error and FID on FF++ (Table 2)"),
    "results": ("results", "every record as one table: print it, or write CSV/Parquet (pandas)"),
    "ffpp-mini": ("ffpp_mini", "build a miniature FF++ tree of real faces (demos, tests)"),
    "card": ("card", "draft (init) or validate (check) a model card for your own ONNX swapper"),
    "distill": ("distill", "train a student from a teacher with the paper's objective and its ablations"),
    "distill-quality": ("distill_quality", "train the quality regressor Q (Eq. 4) on teacher snapshots"),
    "ray-node": ("ray_node", "start a Ray node that offers this host's phones as adb:<serial> resources"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command listed, and the options of ``only`` when it names one.

    Why only one command's options: command modules import what their options need (``convert``
    the checkpoint formats, which import torch: ~2 s on 2 cores). ``--help``, a bare ``mfsbench``
    and an unknown command need only the names and one-line helps, so they import no command
    module at all; ``mfsbench COMMAND ...`` imports just that one (its ``configure`` adds the
    options and sets ``run``).
    """
    parser = argparse.ArgumentParser(
        prog="mfsbench",
        description="How small, how good and how fast a face-swap network really is.",
    )
    parser.add_argument("--version", action="version", version=f"mfsbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        command = sub.add_parser(name, help=help_line)
        if name == only:
            importlib.import_module(f"mfsbench.cli.{module}").configure(command)
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


#: Exit status when the reader of stdout goes away (``mfsbench models | head -1``): 128 + SIGPIPE,
#: what the shell reports for a C tool killed by SIGPIPE, so ``set -o pipefail`` scripts see the same.
BROKEN_PIPE_EXIT = 141


def console_entry() -> None:
    """The ``mfsbench`` script: ``main``, plus a quiet exit when stdout's reader closes early.

    Python ignores SIGPIPE, so a closed pipe surfaces as ``BrokenPipeError`` from a print or from
    the final flush; the rest of the output is discarded (stdout pointed at the null device, so the
    interpreter's own flush at exit cannot raise again) and the exit status is :data:`BROKEN_PIPE_EXIT`.
    """
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        sys.exit(BROKEN_PIPE_EXIT)
    sys.exit(code)
