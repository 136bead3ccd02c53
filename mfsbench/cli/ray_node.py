"""``mfsbench ray-node``: start a Ray node that declares the phones its adb sees as resources.

Run it on every host with phones plugged in or CPUs to time on (and once, with ``--head``, where the
cluster starts); `device --adb --engine ray` then finds each phone through its ``adb:<serial>``
resource, and `device --engine ray` runs its desktop timing units one at a time per node through the
node's ``mfsbench-timer`` resource (``--no-timing`` leaves it off). The command is ``ray start`` with
a ``--resources`` table; ``--print`` shows it without running it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from mfsbench.errors import BadInputError


def configure(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--address", help="the cluster's head, HOST:PORT (what `ray start --head` printed)")
    where.add_argument("--head", action="store_true", help="start a new cluster's head node here")
    parser.add_argument("--serial", action="append", default=[], metavar="SERIAL",
                        help="declare only this phone (repeatable; default: every phone adb lists as "
                             "'device')")
    parser.add_argument("--no-phones", action="store_true",
                        help="a node without phones (CPU work only): skip adb")
    parser.add_argument("--no-timing", action="store_true",
                        help="do not run desktop timing units (`device --engine ray`) on this node, e.g. a "
                             "head that also runs other work (default: the node declares the "
                             "mfsbench-timer resource, one timing unit at a time)")
    parser.add_argument("--print", action="store_true", dest="print_only",
                        help="print the ray start command instead of running it")
    parser.set_defaults(run=run)


def _serials(args: argparse.Namespace) -> list[str]:
    if args.no_phones:
        return []
    from device_runners.android.adb import Adb
    from mfsbench.engine.phones import attached_phones

    attached = attached_phones(Adb().devices())
    if args.serial:
        missing = [s for s in args.serial if s not in attached]
        if missing:
            raise BadInputError(f"phone(s) {', '.join(missing)} not attached (adb lists "
                                f"{', '.join(attached) or 'none'}); plug them in or drop --serial")
        return list(dict.fromkeys(args.serial))
    if not attached:
        raise BadInputError("no phone attached (adb devices -l lists none in 'device' state); plug one in "
                            "with USB debugging on, or pass --no-phones for a CPU-only node")
    return attached


def run(args: argparse.Namespace) -> int:
    from mfsbench.engine.phones import ray_start_command
    from mfsbench.engine.timing import NICENESS_ENV

    serials = _serials(args)
    ray = shutil.which("ray", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    command = ray_start_command(serials, address=None if args.head else args.address, ray=ray or "ray",
                                timing=not args.no_timing)
    shown = shlex.join(command if not args.print_only else [Path(command[0]).name, *command[1:]])
    if not args.no_timing:  # timing units run at the normal priority (Ray's workers default to nice 15)
        shown = f"{NICENESS_ENV[0]}={NICENESS_ENV[1]} {shown}"
    print(shown)
    if args.print_only:
        return 0
    if ray is None:
        raise BadInputError("the `ray` command is not installed; pip install 'mfsbench[ray]'")
    if not args.no_timing:
        os.environ[NICENESS_ENV[0]] = NICENESS_ENV[1]
    sys.stdout.flush()
    os.execv(ray, command)  # the node's own process: its logs and exit code are Ray's
    return 0  # pragma: no cover (execv does not return)
