"""Shared fixtures: the CLI run in-process, and the 2-thread budget CI machines have."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

DATA = Path(__file__).parent / "data"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def cli_in_process(*args: str) -> CliResult:
    """Run ``mfsbench ARGS`` in this process and capture exit code, stdout and stderr (also usable
    from module-scoped fixtures, which cannot take the ``run_cli`` fixture)."""
    from mfsbench.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def run_cli() -> Callable[..., CliResult]:
    """Run ``mfsbench ARGS`` in this process and capture exit code, stdout and stderr."""
    return cli_in_process


# the quality engine tests' mini tree and local table, built once per session (test_engine_ray and
# test_engine_cluster both use them)
from tests.quality_units import units_local_csv, units_tree  # noqa: E402, F401
