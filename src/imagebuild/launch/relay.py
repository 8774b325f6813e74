"""`python -m imagebuild.launch.relay unix PATH | vsock CID PORT`: stdin/stdout to a socket, for ssh's
ProxyCommand (the machine's sshd is behind a unix socket or AF_VSOCK, not a TCP port)."""

from __future__ import annotations

import os
import selectors
import socket
import sys


def relay_command(*target: str) -> list[str]:
    """The ProxyCommand argv that runs this module for `target` ("unix", PATH or "vsock", CID, PORT)."""
    return [sys.executable, "-m", "imagebuild.launch.relay", *target]


def connect(argv: list[str]) -> socket.socket:
    if len(argv) == 2 and argv[0] == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(argv[1])
        return sock
    if len(argv) == 3 and argv[0] == "vsock":
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        sock.connect((int(argv[1]), int(argv[2])))
        return sock
    raise SystemExit("usage: python -m imagebuild.launch.relay unix PATH | vsock CID PORT")


def relay(sock: socket.socket, stdin: int, stdout: int) -> None:
    selector = selectors.DefaultSelector()
    selector.register(stdin, selectors.EVENT_READ)
    selector.register(sock, selectors.EVENT_READ)
    open_inputs = 2
    while open_inputs:
        for key, _ in selector.select():
            if key.fileobj == stdin:
                data = os.read(stdin, 65536)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    selector.unregister(stdin)
                    open_inputs -= 1
                else:
                    sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    # The machine's side ended: the session is over.
                    return
                os.write(stdout, data)


def main() -> None:
    try:
        sock = connect(sys.argv[1:])
    except OSError as e:
        raise SystemExit(f"relay: cannot connect to {' '.join(sys.argv[1:])}: {e}") from None
    with sock:
        relay(sock, sys.stdin.fileno(), sys.stdout.fileno())


if __name__ == "__main__":
    main()
