"""The real ``adb`` client, driven as a subprocess with argument lists and a timeout on every call.

adb is never re-implemented here: the binary bundled in the ``adbutils`` wheel (or ``$ADBUTILS_ADB_PATH``
/ ``adb`` on PATH, which ``adbutils.adb_path()`` prefers) does the talking, so behaviour in tests is the
behaviour on a real phone. ``ANDROID_ADB_SERVER_PORT`` is inherited from the environment, which lets
tests use a private server and leave the user's default 5037 alone.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mfsbench.errors import MfsbenchError
from mfsbench.optional import require


class AdbError(MfsbenchError):
    """An adb call failed; the message is one line with the command and its stderr."""


class AdbTimeout(AdbError):
    """An adb call ran past its timeout (a hung command or a vanished device)."""


@dataclass(frozen=True)
class ShellResult:
    stdout: str
    stderr: str
    returncode: int


def adb_binary() -> str:
    """Path of the adb client (bundled with adbutils unless the user points elsewhere)."""
    adbutils = require("adbutils", "adbutils", "mfsbench device --adb (adbutils ships the adb client)")
    return str(adbutils.adb_path())


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines)[:500] or "(no output)"


class Adb:
    """adb with a default timeout; ``serial`` selects a device (``-s``)."""

    def __init__(self, serial: str | None = None, timeout_s: float = 60.0, binary: str | None = None) -> None:
        self.serial = serial
        self.timeout_s = timeout_s
        self.binary = binary or adb_binary()

    def for_serial(self, serial: str) -> Adb:
        return Adb(serial, self.timeout_s, self.binary)

    def run(self, args: Sequence[str], *, timeout_s: float | None = None, check: bool = True) -> ShellResult:
        """Run ``adb [-s SERIAL] ARGS``; raise :class:`AdbError` on a non-zero exit when ``check``."""
        argv = [self.binary, *(["-s", self.serial] if self.serial else []), *args]
        limit = timeout_s if timeout_s is not None else self.timeout_s
        try:
            # its own session: a Ctrl-C at the terminal signals the whole foreground process group, and
            # an adb client killed by it would end the model in progress that Ctrl-C lets finish
            done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=limit,
                                  stdin=subprocess.DEVNULL, env=dict(os.environ), check=False,
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            raise AdbTimeout(f"adb {' '.join(args)[:200]} timed out after {limit:g} s"
                             f"{' on ' + self.serial if self.serial else ''}") from None
        except OSError as exc:
            raise AdbError(f"cannot run adb ({self.binary}): {exc}") from None
        result = ShellResult(done.stdout, done.stderr, done.returncode)
        if check and done.returncode != 0:
            raise AdbError(f"adb {' '.join(args)[:200]} failed with exit code {done.returncode}"
                           f"{' on ' + self.serial if self.serial else ''}: "
                           f"{_one_line(done.stderr or done.stdout)}")
        return result

    def shell(self, command: str, *, timeout_s: float | None = None, check: bool = True) -> ShellResult:
        """Run one device shell command line (the caller quotes every path with ``shlex.quote``).

        The line goes as a single argument; with shell_v2 (every device since Android 7) the exit code
        and stderr come back separately.
        """
        return self.run(["shell", command], timeout_s=timeout_s, check=check)

    def push(self, local: Path, remote: str, *, timeout_s: float | None = None) -> None:
        self.run(["push", str(local), remote], timeout_s=timeout_s)

    def pull(self, remote: str, local: Path, *, timeout_s: float | None = None) -> None:
        self.run(["pull", remote, str(local)], timeout_s=timeout_s)

    def connect(self, address: str) -> None:
        """``adb connect HOST:PORT`` (adb prints failures on stdout with exit code 0)."""
        out = self.run(["connect", address]).stdout
        if "connected to" not in out:
            raise AdbError(f"adb connect {address} failed: {_one_line(out)}")

    def devices(self) -> dict[str, str]:
        """``adb devices -l`` as serial -> state (``device``, ``offline``, ``unauthorized``...)."""
        out = self.run(["devices", "-l"]).stdout
        found = {}
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("*"):
                found[parts[0]] = parts[1]
        return found

    def kill_server(self) -> None:
        self.run(["kill-server"], check=False, timeout_s=15)
