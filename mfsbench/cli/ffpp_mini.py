"""``mfsbench ffpp-mini DIR``: a miniature FaceForensics++ tree of real faces with the official layout.

For trying ``mfsbench quality`` (and ``make demo``) without the 10 GB dataset: see
:mod:`mfsbench.quality.mini` for what the tree holds and why ``MiniPaste`` is not a swap network.
The face photos come from pinned registry packages into a cache, once; nothing is committed.
"""

from __future__ import annotations

import argparse
import sys
import time

from mfsbench.errors import BadInputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="folder to write (the --root of `mfsbench quality`)")
    parser.add_argument("--people", type=int, default=6, help="distinct people = videos, even (default 6)")
    parser.add_argument("--frames", type=int, default=24, help="frames per video (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-video jitter (default 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mfsbench.cli.common import writable_dir
    from mfsbench.quality.mini import METHOD, build_mini_ffpp

    out = writable_dir(args.dir)
    started = time.perf_counter()
    try:
        root = build_mini_ffpp(out, people=args.people, frames=args.frames, seed=args.seed)
    except RuntimeError as exc:
        raise BadInputError(f"face photos unavailable ({exc}); run once where the package index is "
                            "reachable, or set MFSBENCH_ASSET_CACHE to a folder that holds them") from None
    seconds = time.perf_counter() - started
    print(f"wrote mini FF++ tree {root}: {args.people} original videos, {args.people} {METHOD} videos, "
          f"{args.frames} frames each, splits in {root / 'splits'} ({seconds:.1f} s)")
    print(f"next: mfsbench quality --dataset ffpp --root {root} --splits-dir {root / 'splits'} "
          "--evaluators offline --out reports", file=sys.stderr)
    return 0
