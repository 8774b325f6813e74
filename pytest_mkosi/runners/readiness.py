"""Readiness as an event: before each sshd starts on the SSH port, the guest writes its boot ID to a second
virtio-serial port (imagebuild.launch.guest_ssh); the host reads the lines from qemu's unix socket of it."""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path

BOOT_ID = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ReadyPort:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._sock: socket.socket | None = None
        self._buffer = b""

    def connect(self, *, deadline: float, alive: Callable[[], bool]) -> None:
        """Connect to qemu's socket (it appears shortly after qemu starts)."""
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.socket_path))
                self._sock = sock
                return
            except OSError:
                sock.close()
                if not alive() or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def drain(self) -> None:
        """Forget the announcements read or waiting so far: only one made after this call counts."""
        if self._sock is None:
            return
        self._buffer = b""
        while select.select([self._sock], [], [], 0)[0]:
            if not self._sock.recv(65536):
                break

    def wait_boot(self, *, other_than: str | None, deadline: float, alive: Callable[[], bool],
                  check: Callable[[], None] | None = None) -> str:
        """The next boot ID the guest announces that is not `other_than`; TimeoutError at the deadline,
        ConnectionError when qemu is gone; `check` is called while waiting and may raise (runners/stall.py)."""
        if self._sock is None:
            raise ConnectionError("the readiness port is not connected")
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                line = line.strip()
                if BOOT_ID.match(line) and line.decode() != other_than:
                    return line.decode()
            if check is not None:
                check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the guest did not announce readiness")
            ready, _, _ = select.select([self._sock], [], [], min(remaining, 0.2))
            if ready:
                data = self._sock.recv(4096)
                if not data:
                    raise ConnectionError("qemu closed the readiness port")
                self._buffer += data
            elif not alive():
                raise ConnectionError("qemu exited")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
