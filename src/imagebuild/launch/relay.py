"""`python -m imagebuild.launch.relay unix PATH | serial PATH | vsock CID PORT`: stdin/stdout to a socket,
for ssh's ProxyCommand (the machine's sshd is behind a unix socket or AF_VSOCK, not a TCP port).

`serial` is qemu's unix socket of a virtio-serial port: one stream that an old session may still be
writing into, so the relay passes it on only once a fresh sshd answers (serial_sshd)."""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time

from imagebuild.launch.serial_sshd import open_fresh_sshd

# How long `serial` waits for a fresh sshd (the guest starts the next one after the last session's hang-up).
SERIAL_TIMEOUT = 120.0
USAGE = "usage: python -m imagebuild.launch.relay unix PATH | serial PATH | vsock CID PORT"


def relay_command(*target: str) -> list[str]:
    """The ProxyCommand argv that runs this module for `target` ("unix"/"serial", PATH or "vsock", CID, PORT)."""
    return [sys.executable, "-m", "imagebuild.launch.relay", *target]


def _unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def connect(argv: list[str]) -> tuple[socket.socket, bytes]:
    """The connected socket and what the server said already (the fresh sshd's banner for `serial`)."""
    if len(argv) == 2 and argv[0] == "unix":
        return _unix(argv[1]), b""
    if len(argv) == 2 and argv[0] == "serial":
        path = argv[1]
        return open_fresh_sshd(lambda: _unix(path), deadline=time.monotonic() + SERIAL_TIMEOUT)
    if len(argv) == 3 and argv[0] == "vsock":
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        sock.connect((int(argv[1]), int(argv[2])))
        return sock, b""
    raise SystemExit(USAGE)


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
        sock, said = connect(sys.argv[1:])
    except OSError as e:
        raise SystemExit(f"relay: cannot connect to {' '.join(sys.argv[1:])}: {e}") from None
    with sock:
        if said:
            os.write(sys.stdout.fileno(), said)
        relay(sock, sys.stdin.fileno(), sys.stdout.fileno())


if __name__ == "__main__":
    main()
