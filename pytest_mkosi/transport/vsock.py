"""SSH over AF_VSOCK: a stream to the guest's CID and port; any number of connections at once."""

from __future__ import annotations

import socket

from pytest_mkosi.transport.ssh import SocketFactory


def vsock_socket(cid: int, port: int) -> SocketFactory:
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        try:
            sock.connect((cid, port))
        except OSError:
            sock.close()
            raise
        return sock

    return connect


def notify_listener() -> socket.socket:
    """A host vsock socket for the guest's `vmm.notify_socket` (systemd sends READY=1 when booted)."""
    sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    sock.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
    sock.listen(4)
    return sock
