"""The process that runs one nspawn machine: starts systemd-nspawn on a pty, records the console, starts it
again when the guest reboots, and lets the machine outlive the session when the session kept it.

Run as a script, stdlib only (`python -I nspawn_supervisor.py SPEC`, SPEC a JSON file the runner wrote), so
it starts in milliseconds. Its stdin is a pipe whose other end only the session holds: EOF means the session
ended, however it ended (even by SIGKILL). Then, unless the state directory holds machine/state.py's `kept`
marker, it powers the container off. A kept machine runs on as before: console recorded to console.log,
typing through console.sock, reboots served.

systemd-nspawn gets SIGTERM when this process dies (PR_SET_PDEATHSIG, set before exec: this process has one
thread, so a preexec function is safe here) and starts in the machine's own cgroup
(imagebuild.launch.nspawn_cgroup). Events for the runner go to stdout, one line each: `spawned GEN PID`,
`exited GEN STATUS`.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

KEPT = "kept"  # machine/state.py's marker (that module is not importable from here: -I, no package)
REBOOT_STATUS = 133  # systemd-nspawn's exit status when the container's init asked for a reboot
CONSOLE_SIZE = struct.pack("HHHH", 50, 160, 0, 0)
PR_SET_PDEATHSIG = 1
WAKE = 0.5  # seconds: how often the loop looks at its stop deadline
STOP_GRACE = 10.0


class Supervisor:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.argv: list[str] = spec["argv"]
        self.state_dir = Path(spec["state_dir"])
        self.cgroups = [Path(p) for p in spec.get("cgroups", [])]
        self.stale = [Path(p) for p in spec.get("unlink_before_spawn", [])]
        self.log = open(spec["console_log"], "ab")  # noqa: SIM115 (open for the process's life)
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console_socket = Path(spec["console_socket"])
        console_socket.unlink(missing_ok=True)
        self.listener.bind(str(console_socket))
        os.chmod(console_socket, 0o600)
        self.listener.listen(4)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "session")
        self.events_open = True
        self.stopping = False
        self.stop_deadline: float | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.master = -1
        self.generation = 0

    def event(self, text: str) -> None:
        if not self.events_open:
            return
        try:
            os.write(sys.stdout.fileno(), f"{text}\n".encode())
        except OSError:  # the session is gone; the kept machine runs on
            self.events_open = False

    def child_setup(self) -> None:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        for directory in self.cgroups:
            fd = os.open(directory / "cgroup.procs", os.O_WRONLY)
            os.write(fd, b"0")
            os.close(fd)

    def spawn(self) -> None:
        for path in self.stale:
            path.unlink(missing_ok=True)
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, CONSOLE_SIZE)
        env = {**os.environ, "TERM": os.environ.get("TERM", "vt220")}
        try:
            self.process = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                            start_new_session=True, preexec_fn=self.child_setup)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self.master = master
        self.generation += 1
        self.selector.register(master, selectors.EVENT_READ, "console")
        self.selector.register(os.pidfd_open(self.process.pid), selectors.EVENT_READ, "exit")
        self.event(f"spawned {self.generation} {self.process.pid}")

    def stop(self) -> None:
        """Power the container off: SIGTERM makes systemd-nspawn ask its init to halt."""
        self.stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            if self.stop_deadline is None:
                self.stop_deadline = time.monotonic() + STOP_GRACE

    def read_console(self) -> bool:
        """Copy what the console printed to the log; False when there is nothing more to read now."""
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return False
        except OSError:  # EIO: systemd-nspawn closed its end
            data = b""
        if not data:
            self.close_console()
            return False
        self.log.write(data)
        self.log.flush()
        return True

    def close_console(self) -> None:
        if self.master >= 0:
            self.selector.unregister(self.master)
            os.close(self.master)
            self.master = -1

    def on_session(self) -> None:
        if os.read(sys.stdin.fileno(), 4096):
            return
        self.selector.unregister(sys.stdin.fileno())
        if not (self.state_dir / KEPT).exists():
            self.stop()

    def on_typing(self, connection: socket.socket) -> None:
        try:
            data = connection.recv(65536)
        except OSError:
            data = b""
        if not data or self.master < 0:
            self.selector.unregister(connection)
            connection.close()
            return
        os.write(self.master, data)

    def on_exit(self, pidfd: int) -> int | None:
        """systemd-nspawn ended: start it again after a reboot, else return its status."""
        self.selector.unregister(pidfd)
        os.close(pidfd)
        assert self.process is not None
        status = self.process.wait()
        while self.master >= 0 and self.read_console():  # what it printed last
            pass
        self.close_console()
        self.event(f"exited {self.generation} {status}")
        if status == REBOOT_STATUS and not self.stopping:
            self.spawn()
            return None
        return status

    def run(self) -> int:
        if self.stopping:  # told to stop before the first start
            return 0
        self.spawn()
        while True:
            # Never block for good: SIGTERM's handler sets the deadline while select() waits, and select() retries
            # with the timeout it started with (PEP 475), so a container that does not halt would never be killed.
            timeout = WAKE if self.stop_deadline is None else max(0.0, min(WAKE, self.stop_deadline - time.monotonic()))
            for key, _ in self.selector.select(timeout):
                if key.data == "console" and self.master >= 0:
                    self.read_console()
                elif key.data == "session":
                    self.on_session()
                elif key.data == "accept":
                    with contextlib.suppress(OSError):
                        connection, _ = self.listener.accept()
                        self.selector.register(connection, selectors.EVENT_READ, "typing")
                elif key.data == "typing":
                    self.on_typing(key.fileobj)  # type: ignore[arg-type]
                elif key.data == "exit":
                    status = self.on_exit(key.fd)
                    if status is not None:
                        return status
            if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline and self.process:
                self.process.kill()  # it did not halt in time: its container init dies with it (nspawn's PDEATHSIG)
                self.stop_deadline = time.monotonic() + STOP_GRACE


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    # Ctrl-C on the session's terminal is for the session, which stops its machines itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    supervisor = Supervisor(spec)
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
