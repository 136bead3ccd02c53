"""Benchmark: `mfsbench flops` over the whole zoo, both modes, against its budget (60 s, 4 GB).

Runs the real console entry point in a child process (so peak memory is that process's own) and
prints the measured wall time and peak resident memory with their ratios to the budget. It is a
benchmark, not a test: it reports, it does not fail on a slow machine.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time

TIME_BUDGET_S = 60.0
MEMORY_BUDGET_GB = 4.0


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mfsbench.cli",
                "flops",
                "--mode",
                "both",
                "--format",
                "csv",
                "--out",
                out,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # Linux: KiB
    if done.returncode != 0:
        print(done.stderr)
        return done.returncode
    print(f"mfsbench flops, whole zoo, both modes: {wall:.1f} s wall, {peak_gb:.2f} GB peak RSS")
    print(f"  time   / budget ({TIME_BUDGET_S:.0f} s): {wall / TIME_BUDGET_S:.2f}")
    print(f"  memory / budget ({MEMORY_BUDGET_GB:.0f} GB): {peak_gb / MEMORY_BUDGET_GB:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
