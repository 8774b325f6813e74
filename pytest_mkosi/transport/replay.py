"""An SSH session whose start can be replayed: the client's side of a connection to an sshd that was saved,
in the middle of that connection, with the machine (runners/snapshot.py).

After a load the guest's sshd is where it was at the save: keys exchanged, the client authenticated, a
session channel open. A new paramiko client gets into the matching state without the guest doing any work
(under TCG a handshake costs the guest about a second): the record holds every byte the sshd sent until the
save and what the client drew at random that enters the session keys (the KEXINIT cookie and the
curve25519 key). The replaying client reads the recorded bytes instead of the socket and swallows what it
sends until it has sent as many bytes as the recorded client had; the loaded sshd heard those before the
save. A recorded chunk is handed over only once the client has sent what it had sent when the chunk came:
paramiko drops a message that comes before it waits for it (a service accept before its auth handler).
The replaying client's encrypted bytes differ from the recorded ones (random padding), which does not
matter: the keys, sequence numbers and cipher positions come out the same, and the sshd never sees them.
What does not match (another client version, a byte lost at the save) fails the banner check or the first
MAC: the caller then falls back to a fresh sshd.

The record can derive the session keys: it stays in memory and is never printed.
"""

from __future__ import annotations

import fcntl
import select
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paramiko
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paramiko.kex_curve25519 import KexCurve25519

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# The one key exchange whose random part the record can hold (mlkem's encapsulation draws more).
KEX = "curve25519-sha256@libssh.org"
# A KEXINIT payload: message number (1 byte), cookie (16 random bytes), then the algorithm lists.
_COOKIE_END = 17


def disabled_kex() -> dict[str, list[str]]:
    """paramiko's `disabled_algorithms` that leave only KEX."""
    return {"kex": [k for k in vars(paramiko.Transport)["_preferred_kex"] if k != KEX]}


@dataclass(frozen=True, repr=False)
class SessionRecord:
    """The start of a recorded session, up to the save (see the module's docstring)."""

    # What the server sent, as it came: each chunk with the number of bytes the client had sent by then.
    server_said: tuple[tuple[int, bytes], ...]
    client_banner: bytes
    client_length: int
    kex_init: bytes
    kex_key: bytes

    def __repr__(self) -> str:
        server = sum(len(chunk) for _, chunk in self.server_said)
        return f"SessionRecord({server} bytes from the server, {self.client_length} from the client)"


class _RepeatableCurve25519(KexCurve25519):
    def start_kex(self) -> None:
        super().start_kex()  # sends the public half of a new key: swallowed when replaying
        transport = self.transport
        if not isinstance(transport, RepeatableTransport) or self.key is None:
            return
        if transport.replay_key is not None:
            self.key = X25519PrivateKey.from_private_bytes(transport.replay_key)
            transport.replay_key = None
        elif transport.recorded_key is None:
            transport.recorded_key = self.key.private_bytes_raw()


class RepeatableTransport(paramiko.Transport):
    """A client transport that keeps (recording) or takes (replaying) the random parts of its first key
    exchange; later key exchanges are random as usual."""

    _kex_info = {**vars(paramiko.Transport)["_kex_info"], KEX: _RepeatableCurve25519}

    def __init__(self, sock: Any, *, replay: SessionRecord | None = None, **kwargs: Any) -> None:
        super().__init__(sock, **kwargs)
        self.replay_kex_init = None if replay is None else replay.kex_init
        self.replay_key = None if replay is None else replay.kex_key
        self.recorded_kex_init: bytes | None = None
        self.recorded_key: bytes | None = None

    def _send_kex_init(self) -> None:
        super()._send_kex_init()  # type: ignore[misc]  # (not in the stubs) sent with a new cookie: swallowed when replaying
        sent = self.local_kex_init
        if sent is None:
            raise paramiko.SSHException("paramiko sent no KEXINIT")
        if self.replay_kex_init is not None:
            if sent[_COOKIE_END:] != self.replay_kex_init[_COOKIE_END:]:
                raise paramiko.SSHException("this client offers other algorithms than the recorded one")
            self.local_kex_init = self._latest_kex_init = self.replay_kex_init
            self.replay_kex_init = None
        elif self.recorded_kex_init is None:
            self.recorded_kex_init = sent


class RecordingSocket(socket.socket):
    """A connected socket that keeps what it receives (after `prefix`, already received) and counts what it
    sends, until freeze()."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self._prefix = prefix
        self._received: list[tuple[int, bytes]] = [(0, prefix)] if prefix else []
        self._sent = bytearray()
        self._lock = threading.Lock()
        self._recording = True

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:bufsize], self._prefix[bufsize:]
            return data
        data = super().recv(bufsize, flags)
        with self._lock:
            if self._recording and data:
                self._received.append((len(self._sent), data))
        return data

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        with self._lock:
            count = super().send(data, flags)
            if self._recording:
                self._sent += bytes(data)[:count]
        return count

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        with self._lock:
            super().sendall(data, flags)
            if self._recording:
                self._sent += bytes(data)

    def unheard(self) -> int:
        """Whether the peer has yet to read some of what was sent (the kernel's count, not in bytes)."""
        return int(struct.unpack("i", fcntl.ioctl(self.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0])

    def wait_quiet(self, *, quiet: float = 0.05, deadline: float) -> None:
        """Until for `quiet` seconds nothing has waited to be read and the peer has read all that was sent:
        with the guest stopped, everything it said has been recorded and it has heard all the client said."""
        still_since = time.monotonic()
        while time.monotonic() - still_since < quiet:
            if time.monotonic() > deadline:
                raise TimeoutError("the SSH stream did not come to rest")
            if select.select([self], [], [], 0)[0] or self.unheard():
                still_since = time.monotonic()
            time.sleep(0.005)

    def freeze(self, transport: RepeatableTransport, client_banner: bytes) -> SessionRecord:
        """The record so far; from now on nothing more is kept."""
        if transport.recorded_kex_init is None or transport.recorded_key is None:
            raise paramiko.SSHException(f"the session's key exchange was not {KEX}: it cannot be replayed")
        with self._lock:
            self._recording = False
            if not self._sent.startswith(client_banner):
                raise paramiko.SSHException("the client's first bytes were not its banner")
            record = SessionRecord(tuple(self._received), client_banner, len(self._sent),
                                   transport.recorded_kex_init, transport.recorded_key)
            self._received.clear()
            self._sent.clear()
        return record


class ReplayingSocket(socket.socket):
    """A connected socket to a loaded sshd: reads return the record's server chunks first, each once the
    client has sent what it had sent when the chunk came; the first `client_length` bytes sent are swallowed,
    the banner among them checked."""

    def __init__(self, sock: socket.socket, record: SessionRecord) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self._chunks = list(record.server_said)
        self._banner = record.client_banner
        self._length = record.client_length
        self._swallowed = 0
        self._sent = threading.Condition()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        with self._sent:
            if self._chunks:
                after, chunk = self._chunks[0]
                if not self._sent.wait_for(lambda: self._swallowed >= after, self.gettimeout()):
                    raise TimeoutError("timed out")  # as a socket with a timeout would: paramiko reads again
                if len(chunk) > bufsize:
                    self._chunks[0] = (after, chunk[bufsize:])
                    return chunk[:bufsize]
                self._chunks.pop(0)
                return chunk
        return super().recv(bufsize, flags)

    def _swallow(self, data: bytes) -> int:
        """Swallow the part of `data` the loaded sshd has heard (the caller holds the condition)."""
        count = min(len(data), self._length - self._swallowed)
        if self._swallowed < len(self._banner):
            said = data[:count][:len(self._banner) - self._swallowed]
            if self._banner[self._swallowed:self._swallowed + len(said)] != said:
                # paramiko turns this into an EOFError; the caller then falls back to a fresh sshd.
                raise ConnectionError(f"the client's banner is not the recorded {self._banner!r}")
        self._swallowed += count
        self._sent.notify_all()
        return count

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        with self._sent:
            if self._swallowed < self._length:
                return self._swallow(bytes(data))
        return super().send(data, flags)

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        data = bytes(data)
        with self._sent:
            while self._swallowed < self._length and data:
                data = data[self._swallow(data):]
        if data:
            super().sendall(data, flags)
