"""Benchmark: what ``--engine ray`` costs on the mini FF++ tree, and how units scale with workers (issue 19).

Prints, against the issue's targets:

* **Ray start**: seconds to start the local instance the engine starts without ``--ray-address``
  (one CPU slot per core, object store capped, no dashboard). Target ≤ 15 s.
* **Ray run vs local run**: ``mfsbench quality`` on the mini tree (calibration rows, the
  random-weight student, FF++'s manipulated videos; offline evaluators), once with today's
  in-process path and once with ``--engine ray`` on the already started instance (fresh output
  folders and caches for both). Target: Ray run ≤ local run + 10 %. The two tables must be
  byte-identical (checked; a mismatch fails the benchmark).
* **Scaling 1 → 2 workers** on a unit-bound workload: 8 units of a fixed single-threaded CPU loop
  run through :class:`~mfsbench.engine.ray_engine.RayEngine` on an instance of 1 CPU, then of 2.
  Target ≥ 1.8x. On a 2-core machine shared with other work the second core is not always free:
  the number printed is what this machine gave, measured, not projected.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

from bench_quality import _cli  # the in-process CLI and its wall time, as bench_quality runs it

TARGET_START_S = 15.0

TARGET_OVERHEAD = 0.10
TARGET_SCALING = 1.8
MODELS = "identity_oracle,target_copy,mobilefaceswap_224"
SPIN_UNITS = 8




class Spin:
    """A unit-bound task: a fixed pure-Python loop (one core, no I/O, no shared state)."""

    def __call__(self, unit: int) -> int:
        total = 0
        for i in range(20_000_000):
            total += i ^ unit
        return total


def _scaling() -> tuple[float, float]:
    """Seconds for :data:`SPIN_UNITS` spin units on a 1-CPU and on a 2-CPU Ray instance."""
    import ray

    from mfsbench.engine.ray_engine import RayEngine

    seconds = []
    for cpus in (1, 2):
        engine = RayEngine(num_cpus=cpus)
        engine.run(Spin(), list(range(cpus)), lambda u, r: None)  # warm: one worker process per slot
        started = time.perf_counter()
        engine.run(Spin(), list(range(SPIN_UNITS)), lambda u, r: None)
        seconds.append(time.perf_counter() - started)
        engine.close()
        assert not ray.is_initialized()
    return seconds[0], seconds[1]


def _verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mfsbench.engine.ray_engine import RayEngine
    from mfsbench.quality.mini import build_mini_ffpp

    print(f"machine: {os.cpu_count()} core(s)")
    with tempfile.TemporaryDirectory(prefix="mfsbench-bench-ray-") as tmp:
        root = build_mini_ffpp(Path(tmp) / "ffpp", people=4, frames=12)
        base = ["quality", "--dataset", "ffpp", "--root", str(root), "--splits-dir", str(root / "splits"),
                "--evaluators", "offline", "--models", MODELS, "--allow-random-weights", "--no-progress"]
        code, local_s, err = _cli([*base, "--out", str(Path(tmp) / "local")])
        if code != 0:
            print(err)
            return code
        started = time.perf_counter()
        engine = RayEngine()
        start_s = time.perf_counter() - started
        try:
            code, ray_s, err = _cli([*base, "--out", str(Path(tmp) / "ray"), "--engine", "ray"])
        finally:
            engine.close()
        if code != 0:
            print(err)
            return code
        found = re.search(r"(\d+) unit\(s\) run on", err)
        units = found.group(1) if found else "?"
        same = (Path(tmp) / "local" / "table2_quality.csv").read_bytes() == \
            (Path(tmp) / "ray" / "table2_quality.csv").read_bytes()
    overhead = ray_s / local_s - 1
    print(f"mini tree (4 people, 12 frames; {units} units): local run {local_s:.1f} s, "
          f"ray run {ray_s:.1f} s (instance already started)")
    print(f"ray start: {start_s:.1f} s (target <= {TARGET_START_S:.0f} s: "
          f"{_verdict(start_s <= TARGET_START_S)})")
    print(f"ray run overhead vs local: {overhead * 100:+.1f} % (target <= {TARGET_OVERHEAD * 100:.0f} %: "
          f"{_verdict(overhead <= TARGET_OVERHEAD)})")
    print(f"table2_quality.csv ray vs local: {'byte-identical' if same else 'DIFFERENT'}")
    one, two = _scaling()
    print(f"scaling on {SPIN_UNITS} unit-bound units (single-threaded CPU loop): 1 worker {one:.2f} s, "
          f"2 workers {two:.2f} s -> {one / two:.2f}x (target >= {TARGET_SCALING}x: "
          f"{_verdict(one / two >= TARGET_SCALING)}; measured on this machine's {os.cpu_count()} core(s), "
          f"load average {os.getloadavg()[0]:.1f} while measuring: other work takes cores from the workers)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
