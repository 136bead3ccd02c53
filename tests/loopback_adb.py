"""A loopback Android device for tests: the device side of the adb transport, standard library only.

No phone and no ``adbd`` exist on CI machines, so the runner is tested against this object with the
*real* adb client (see spec §8c). It listens on 127.0.0.1 outside the emulator scan range
5555-5585, answers CNXN without AUTH, and serves ``shell:`` (v1), ``shell,v2,...:`` (stdout, stderr and
exit code packets), ``exec:`` and ``sync:`` (STAT/STA2/LST2, LIST, SEND, RECV, QUIT).

Two traps from the spec are avoided on purpose: every TCP connection gets its own state (the adb
server may open several), and a stream's command starts only after the OPEN's OKAY was sent.

Commands run with ``/bin/sh`` inside ``root``: the device paths in ``REMAPPED`` are rewritten to
``root/...`` and ``root/bin`` (``getprop``, ``dumpsys``) comes first on ``PATH``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import socket
import stat
import struct
import subprocess
import threading
from pathlib import Path

A_CNXN, A_OPEN, A_OKAY, A_WRTE, A_CLSE = (int.from_bytes(c, "little") for c in
                                          (b"CNXN", b"OPEN", b"OKAY", b"WRTE", b"CLSE"))
VERSION, MAX_DATA = 0x01000001, 256 * 1024
HEADER = struct.Struct("<6I")
#: device directories that live under the sandbox root
REMAPPED = ("/data/local/tmp", "/sys/devices/system/cpu", "/sys/class/thermal")
SYNC_CHUNK = 64 * 1024


def _packet(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    checksum = sum(data) & 0xFFFFFFFF
    return HEADER.pack(command, arg0, arg1, len(data), checksum, command ^ 0xFFFFFFFF) + data


def _free_port() -> int:
    """A free loopback port outside the adb server's emulator scan range."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not 5554 <= port <= 5585:
            return port


class LoopbackDevice:
    """One fake phone: ``start()`` listens, ``kill()`` drops every connection and stops listening.

    ``kill_on`` (a regex) makes the device vanish the moment a shell command matching it starts:
    a phone unplugged mid-run, deterministically.
    """

    def __init__(self, root: Path, props: dict[str, str], *, battery_temp_c10: int = 312,
                 thermal_status: int = 0, kill_on: str | None = None) -> None:
        self.root = Path(root)
        self.props = props
        self.kill_on = re.compile(kill_on) if kill_on else None
        self.port = _free_port()
        self.commands: list[str] = []
        self._listener: socket.socket | None = None
        self._conns: list[_Connection] = []
        self._lock = threading.Lock()
        self.killed = False
        self._build_sandbox(battery_temp_c10, thermal_status)

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _build_sandbox(self, battery_temp_c10: int, thermal_status: int) -> None:
        (self.root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
        cpu = self.root / "sys/devices/system/cpu"
        for index, freq in enumerate((1800000, 1800000, 2600000, 2600000)):
            freq_dir = cpu / f"cpu{index}/cpufreq"
            freq_dir.mkdir(parents=True, exist_ok=True)
            (freq_dir / "scaling_governor").write_text("schedutil\n")
            (freq_dir / "scaling_cur_freq").write_text(f"{freq // 2}\n")
            (freq_dir / "cpuinfo_max_freq").write_text(f"{freq}\n")
        zone = self.root / "sys/class/thermal/thermal_zone0"
        zone.mkdir(parents=True, exist_ok=True)
        (zone / "type").write_text("cpu-thermal\n")
        (zone / "temp").write_text("41000\n")
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        cases = "".join(f"  {shlex.quote(k)}) echo {shlex.quote(v)} ;;\n" for k, v in self.props.items())
        listing = "".join(f"echo {shlex.quote(f'[{k}]: [{v}]')}\n" for k, v in self.props.items())
        self._script("getprop", f'if [ $# -eq 0 ]; then\n{listing}exit 0\nfi\ncase "$1" in\n{cases}'
                                "  *) echo ;;\nesac\n")
        battery = (f"Current Battery Service state:\n  AC powered: false\n  USB powered: true\n"
                   f"  level: 87\n  scale: 100\n  voltage: 4211\n  temperature: {battery_temp_c10}\n"
                   f"  technology: Li-ion\n")
        thermal = f"IsStatusOverride: false\nThermal Status: {thermal_status}\n"
        self._script("dumpsys", 'case "$1" in\n'
                                f"  battery) cat <<'EOF'\n{battery}EOF\n;;\n"
                                f"  thermalservice) cat <<'EOF'\n{thermal}EOF\n;;\n"
                                '  *) echo "Can\'t find service: $1" >&2; exit 1 ;;\nesac\n')

    def _script(self, name: str, body: str) -> None:
        path = self.root / "bin" / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)

    def host_path(self, device_path: str) -> Path:
        """Where a device path lives in the sandbox (anything else is refused)."""
        for prefix in REMAPPED:
            if device_path == prefix or device_path.startswith(prefix + "/"):
                return self.root / device_path.lstrip("/")
        raise PermissionError(f"{device_path}: outside the loopback sandbox")

    def remap_command(self, command: str) -> str:
        for prefix in REMAPPED:
            command = command.replace(prefix, str(self.root / prefix.lstrip("/")))
        return command

    def start(self) -> LoopbackDevice:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(4)
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True, name=f"adb-loopback-{self.port}").start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            connection = _Connection(self, sock)
            with self._lock:
                if self.killed:
                    sock.close()
                    return
                self._conns.append(connection)
            threading.Thread(target=connection.serve, daemon=True).start()

    def kill(self) -> None:
        """Vanish: stop listening, drop every connection, end every running command."""
        with self._lock:
            self.killed = True
            conns, self._conns = self._conns, []
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        for connection in conns:
            connection.close()

    stop = kill


class _Connection:
    """One TCP connection from the adb server: its own streams, ids and CNXN state."""

    def __init__(self, device: LoopbackDevice, sock: socket.socket) -> None:
        self.device = device
        self.sock = sock
        self.send_lock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.closed = False

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        with self.send_lock:
            self.sock.sendall(_packet(command, arg0, arg1, data))

    def _recv_exact(self, size: int) -> bytes:
        buf = b""
        while len(buf) < size:
            chunk = self.sock.recv(size - len(buf))
            if not chunk:
                raise ConnectionError("peer closed")
            buf += chunk
        return buf

    def serve(self) -> None:
        try:
            while True:
                command, arg0, arg1, length, _crc, _magic = HEADER.unpack(self._recv_exact(HEADER.size))
                data = self._recv_exact(length) if length else b""
                self._dispatch(command, arg0, arg1, data)
        except (OSError, ConnectionError):
            pass
        finally:
            self.close()

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            props = self.device.props
            banner = (f"device::ro.product.name={props.get('ro.product.name', 'loopback')};"
                      f"ro.product.model={props.get('ro.product.model', 'Loopback')};"
                      f"ro.product.device={props.get('ro.product.device', 'loopback')};"
                      "features=shell_v2,cmd")
            self.send(A_CNXN, VERSION, MAX_DATA, banner.encode())
        elif command == A_OPEN:
            local_id, self.next_id = self.next_id, self.next_id + 1
            stream = _Stream(self, local_id, arg0, data.rstrip(b"\0").decode())
            self.streams[local_id] = stream
            self.send(A_OKAY, local_id, arg0)  # OKAY first, only then may the command write
            threading.Thread(target=stream.run, daemon=True).start()
        elif command == A_OKAY:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.acked.release()
        elif command == A_WRTE:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.inbound.put(data)
                self.send(A_OKAY, arg1, arg0)
        elif command == A_CLSE:
            stream = self.streams.pop(arg1, None)
            if stream is not None:
                stream.remote_closed()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in list(self.streams.values()):
            stream.remote_closed()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class _Stream:
    """One OPENed service; ``write`` keeps at most one WRTE in flight until the host's OKAY."""

    def __init__(self, conn: _Connection, local_id: int, remote_id: int, service: str) -> None:
        self.conn, self.local_id, self.remote_id, self.service = conn, local_id, remote_id, service
        self.acked = threading.Semaphore(1)
        self.inbound: queue.Queue[bytes | None] = queue.Queue()
        self.pending = b""
        self.process: subprocess.Popen[bytes] | None = None
        self.gone = False

    # -- transport ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        for start in range(0, len(data), MAX_DATA):
            while not self.acked.acquire(timeout=0.2):
                if self.gone or self.conn.closed:
                    raise ConnectionError("stream closed")
            if self.gone:
                raise ConnectionError("stream closed")
            self.conn.send(A_WRTE, self.local_id, self.remote_id, data[start:start + MAX_DATA])

    def read_exact(self, size: int) -> bytes:
        while len(self.pending) < size:
            chunk = self.inbound.get()
            if chunk is None:
                raise ConnectionError("stream closed")
            self.pending += chunk
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def close(self) -> None:
        if not self.gone and not self.conn.closed:
            self.gone = True
            with contextlib.suppress(OSError):
                self.conn.send(A_CLSE, self.local_id, self.remote_id)

    def remote_closed(self) -> None:
        self.gone = True
        self.inbound.put(None)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    # -- services -----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.service.startswith("sync:"):
                self._sync()
            elif self.service.startswith("shell,v2") or self.service.startswith("shell,"):
                self._shell(self.service.split(":", 1)[1], v2=True)
            elif self.service.startswith("shell:"):
                self._shell(self.service[len("shell:"):], v2=False)
            elif self.service.startswith("exec:"):
                self._shell(self.service[len("exec:"):], v2=False, stderr=False)
            else:
                self.write(f"FAIL: unsupported service {self.service}".encode())
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def _shell(self, command: str, *, v2: bool, stderr: bool = True) -> None:
        device = self.conn.device
        device.commands.append(command)
        if device.kill_on is not None and device.kill_on.search(command):
            device.kill()
            return
        env = {"PATH": f"{device.root / 'bin'}:/usr/bin:/bin", "HOME": str(device.root / "data/local/tmp"),
               "LC_ALL": "C"}
        merge = subprocess.PIPE if v2 else subprocess.STDOUT
        if not stderr:
            merge = subprocess.DEVNULL
        self.process = subprocess.Popen(["/bin/sh", "-c", device.remap_command(command)],
                                        cwd=device.root / "data/local/tmp", env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=merge)
        assert self.process.stdout is not None
        if not v2:
            for chunk in iter(lambda: os.read(self.process.stdout.fileno(), 65536), b""):  # type: ignore[union-attr]
                self.write(chunk)
            self.process.wait()
            return
        lock = threading.Lock()

        def pump(pipe: object, channel: int) -> None:
            for chunk in iter(lambda: os.read(pipe.fileno(), 65536), b""):  # type: ignore[attr-defined]
                with lock:
                    self.write(bytes([channel]) + struct.pack("<I", len(chunk)) + chunk)

        err_thread = threading.Thread(target=pump, args=(self.process.stderr, 2), daemon=True)
        err_thread.start()
        pump(self.process.stdout, 1)
        err_thread.join()
        code = self.process.wait()
        self.write(bytes([3]) + struct.pack("<I", 1) + bytes([code & 0xFF]))

    def _sync(self) -> None:
        device = self.conn.device
        while True:
            request, length = struct.unpack("<4sI", self.read_exact(8))
            if request == b"QUIT":
                return
            path = self.read_exact(length).decode()
            if request == b"STAT":
                self.write(b"STAT" + self._stat_v1(path))
            elif request in (b"STA2", b"LST2"):
                self.write(request + self._stat_v2(path))
            elif request == b"LIST":
                self._list(path)
            elif request == b"SEND":
                self._send(path)
            elif request == b"RECV":
                try:
                    data = device.host_path(path).read_bytes()
                except OSError as exc:
                    message = f"remote object '{path}' does not exist ({exc.strerror or exc})".encode()
                    self.write(b"FAIL" + struct.pack("<I", len(message)) + message)
                    continue
                for start in range(0, len(data), SYNC_CHUNK):
                    piece = data[start:start + SYNC_CHUNK]
                    self.write(b"DATA" + struct.pack("<I", len(piece)) + piece)
                self.write(b"DONE" + struct.pack("<I", 0))
            else:
                message = f"unknown sync request {request!r}".encode()
                self.write(b"FAIL" + struct.pack("<I", len(message)) + message)
                return

    def _lookup(self, path: str) -> os.stat_result | None:
        try:
            return os.stat(self.conn.device.host_path(path))
        except OSError:
            return None

    def _stat_v1(self, path: str) -> bytes:
        st = self._lookup(path)
        if st is None:
            return struct.pack("<3I", 0, 0, 0)
        return struct.pack("<3I", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))

    def _stat_v2(self, path: str) -> bytes:
        st = self._lookup(path)
        if st is None:
            return struct.pack("<IQQIIIIQqqq", 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)  # ENOENT
        return struct.pack("<IQQIIIIQqqq", 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid,
                           st.st_gid, st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime))

    def _list(self, path: str) -> None:
        try:
            folder = self.conn.device.host_path(path)
            names = sorted(os.listdir(folder))
        except OSError:
            names, folder = [], Path("/nonexistent")
        for name in names:
            st = os.stat(folder / name)
            raw = name.encode()
            self.write(b"DENT" + struct.pack("<4I", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime),
                                             len(raw)) + raw)
        self.write(b"DONE" + struct.pack("<4I", 0, 0, 0, 0))

    def _send(self, spec: str) -> None:
        path, _, mode_text = spec.rpartition(",")
        chunks = []
        while True:
            request, length = struct.unpack("<4sI", self.read_exact(8))
            if request == b"DATA":
                chunks.append(self.read_exact(length))
            elif request == b"DONE":
                break
            else:
                raise ConnectionError(f"unexpected {request!r} during SEND")
        try:
            target = self.conn.device.host_path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"".join(chunks))
            target.chmod(stat.S_IMODE(int(mode_text or "420")))
        except (OSError, ValueError) as exc:
            message = f"{path}: {exc}".encode()
            self.write(b"FAIL" + struct.pack("<I", len(message)) + message)
            return
        self.write(b"OKAY" + struct.pack("<I", 0))


# -- pytest fixtures (imported by tests/test_adb_*.py) ---------------------------------------------

def _fixtures() -> tuple[object, object]:
    import pytest

    @pytest.fixture(scope="module")
    def adb_server() -> object:
        """The real adb client on a private server port, one per test module (starting one takes 3 s);
        the server is killed at the end, and the user's default port is never touched."""
        from device_runners.android.adb import Adb

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ANDROID_ADB_SERVER_PORT", str(_free_port()))
            adb = Adb(timeout_s=20.0)
            adb.run(["start-server"])
            try:
                yield adb
            finally:
                adb.kill_server()

    @pytest.fixture
    def loopback(tmp_path: Path) -> object:
        """Factory of started loopback devices, each stopped at the end."""
        made: list[LoopbackDevice] = []

        def make(name: str = "phone", **kwargs: object) -> LoopbackDevice:
            props = {"ro.product.model": f"Loopback_{name}", "ro.product.board": "loop",
                     "ro.board.platform": "mt6891", "ro.soc.model": "MT6891",
                     "ro.product.cpu.abi": "arm64-v8a", "ro.build.version.release": "13",
                     "ro.build.version.sdk": "33"}
            device = LoopbackDevice(tmp_path / f"device-{name}", props, **kwargs)  # type: ignore[arg-type]
            device.start()
            made.append(device)
            return device

        yield make
        for device in made:
            device.kill()

    return adb_server, loopback


adb_server, loopback = _fixtures()


def replay_binary(path: Path, recorded: Path) -> Path:
    """A stand-in ``benchmark_model``: checks its ``--graph`` exists, then prints a recorded output."""
    text = recorded.read_text()
    path.write_text('#!/bin/sh\n'
                    'for a in "$@"; do case "$a" in --graph=*) graph="${a#--graph=}";; esac; done\n'
                    'if [ ! -f "$graph" ]; then echo "ERROR: Could not open \'$graph\'." >&2; exit 1; fi\n'
                    f"cat <<'RECORDED'\n{text}\nRECORDED\n")
    path.chmod(0o755)
    return path
