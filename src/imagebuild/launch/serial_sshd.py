"""A fresh sshd on a virtio-serial port, or nothing: the one check every host client of the port goes through.

The port is one byte stream whichever guest process holds it (imagebuild.launch.guest_ssh). When a client
connects right after the previous one hung up, qemu accepts it at once, while the guest may not have seen
the hang-up yet: the old session's sshd then goes on, or finishes a write it was blocked in, and its bytes
reach the new client, which fails with "Bad packet length" or "banner line contains invalid characters".

A fresh sshd writes its identification line ("SSH-2.0-...\\r\\n") first and then waits for the client's:
so a connection whose first bytes are exactly that line, with nothing after it, is a fresh sshd's. Anything
else is read away until the port is quiet, the client hangs up (the old sshd reads the EOF and exits, and
the guest's unit starts a new one) and tries again after a pause that doubles (1, 2, then 4 s). A connection
on which nothing arrives for SILENCE_LIMIT is given up the same way: an sshd that already wrote its banner
to an earlier client would wait for that client's banner for ever.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("imagebuild")

# How long the guest may take to put a fresh sshd's banner on the port once the host has connected.
SILENCE_LIMIT = 20.0
# No byte for this long: an old session has said all it had to say.
QUIET = 0.5
BACKOFF = (1.0, 2.0, 4.0)
LONGEST_BANNER = 255  # RFC 4253 4.2: the identification line is at most 255 bytes


class PrefixedSocket(socket.socket):
    """A connected socket whose first reads return `prefix` (what the server said before it was handed on)."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self._prefix = prefix

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:bufsize], self._prefix[bufsize:]
            return data
        return super().recv(bufsize, flags)


def _first_line(sock: socket.socket, limit: float) -> tuple[bytes, str | None]:
    """What arrives up to the first newline, and why it is not a fresh sshd's banner (None: it is)."""
    data = b""
    deadline = time.monotonic() + limit
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
            return data, f"nothing for {limit:g}s" if not data else "no complete line"
        chunk = sock.recv(4096)
        if not chunk:
            return data, "the port closed"
        data += chunk
        if len(data) > LONGEST_BANNER and b"\n" not in data:
            return data, "no identification line"
    line, _, rest = data.partition(b"\n")
    if not line.startswith(b"SSH-2.0-") or not line.endswith(b"\r"):
        return data, "bytes of an old session"
    if rest or select.select([sock], [], [], 0)[0]:
        return data, "an old session's bytes after the banner"
    return data, None


def read_until_quiet(sock: socket.socket, *, quiet: float, deadline: float) -> int:
    """Read and drop until nothing arrives for `quiet` seconds (or EOF, or `deadline`); bytes dropped."""
    dropped = 0
    while time.monotonic() < deadline and select.select([sock], [], [], quiet)[0]:
        chunk = sock.recv(65536)
        if not chunk:
            break
        dropped += len(chunk)
    return dropped


def open_fresh_sshd(
    connect: Callable[[], socket.socket],
    *,
    deadline: float,
    silence_limit: float = SILENCE_LIMIT,
    quiet: float = QUIET,
    backoff: Sequence[float] = BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[socket.socket, bytes]:
    """A connection to the port on which a fresh sshd waits for the client's banner, and the banner it sent
    (the caller replays it: PrefixedSocket). TimeoutError when none was found by `deadline`; what `connect`
    raises goes through."""
    attempt = 0
    while True:
        sock = connect()
        try:
            banner, problem = _first_line(sock, max(0.1, min(silence_limit, deadline - time.monotonic())))
            if problem is None:
                return sock, banner
            dropped = read_until_quiet(sock, quiet=quiet, deadline=deadline)
        except BaseException:
            sock.close()
            raise
        sock.close()
        pause = backoff[min(attempt, len(backoff) - 1)]
        log.debug("SSH port: %s (%d bytes read away); trying again in %gs", problem, len(banner) + dropped, pause)
        if time.monotonic() + pause >= deadline:
            raise TimeoutError(f"no fresh sshd on the SSH port ({problem})")
        sleep(pause)
        attempt += 1
