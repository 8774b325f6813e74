"""SSH over a virtio-serial port: qemu serves the port as a unix socket on the host, one stream at a time.

Only one program can be connected to the port; the runner keeps one paramiko transport on it and runs
every command as a channel of that transport. After a reboot the old stream is dead and a new connection
is needed (the guest's sshd of the new boot reads EOF until the host connects again).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from pytest_mkosi.transport.ssh import SocketFactory


def virtio_serial_socket(path: Path, *, alive: Callable[[], bool]) -> SocketFactory:
    def connect() -> socket.socket:
        if not alive():
            raise ConnectionError("qemu is not running")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            raise
        return sock

    return connect
