"""A recorded SSH session's start, replayed (pytest_mkosi/transport/replay.py): the pacing and swallowing of
the sockets, and a whole replay against a paramiko server brought into the state of the save.

A loaded snapshot holds an sshd in the middle of a session. Here the server is paramiko in this process:
server 1 serves the recorded session; server 2, whose random choices in the transport thread are the same
(the cookie and the curve25519 key), is fed what server 1 heard, which puts it where server 1 was at the
"save". The replaying client must then agree with it on keys, sequence numbers and the open channel: the
time it sends reaches the waiting channel and a new command runs."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
import pytest
from paramiko import kex_curve25519

from imagebuild.launch.ssh_keys import SshKeys, make_keys
from pytest_mkosi.runners.snapshot import GuestClockSetter
from pytest_mkosi.transport.replay import RecordingSocket, RepeatableTransport, ReplayingSocket, SessionRecord
from pytest_mkosi.transport.ssh import SshConnection


def test_recorded_chunks_come_in_step_with_what_the_client_sent() -> None:
    guest, host = socket.socketpair()
    with guest:
        recording = RecordingSocket(host, b"SSH-2.0-sshd\r\n")
        assert recording.recv(100) == b"SSH-2.0-sshd\r\n"  # the banner read before, handed on
        recording.sendall(b"SSH-2.0-me\r\n")
        assert recording.unheard()  # a save now would hold a guest that has not heard it
        assert guest.recv(100) == b"SSH-2.0-me\r\n"
        assert not recording.unheard()
        recording.wait_quiet(deadline=time.monotonic() + 1)
        guest.sendall(b"first")
        assert recording.recv(100) == b"first"
        recording.send(b"abc")
        guest.sendall(b"second")
        assert recording.recv(100) == b"second"
        transport = type("T", (), {"recorded_kex_init": b"\x14" + b"c" * 16, "recorded_key": b"k" * 32})()
        record = recording.freeze(transport, b"SSH-2.0-me\r\n")  # type: ignore[arg-type]
        recording.sendall(b"after the freeze")  # not recorded
        assert guest.recv(100).endswith(b"after the freeze")
        recording.close()
    assert record.server_said == ((0, b"SSH-2.0-sshd\r\n"), (12, b"first"), (15, b"second"))
    assert record.client_length == 15 and "first" not in repr(record)

    loaded, host = socket.socketpair()
    with loaded:
        replaying = ReplayingSocket(host, record)
        replaying.settimeout(0.2)
        assert replaying.recv(5) == b"SSH-2"  # a chunk may be read in pieces
        assert replaying.recv(100) == b".0-sshd\r\n"
        with pytest.raises(TimeoutError):  # not before the client has said what it had said then
            replaying.recv(100)
        replaying.sendall(b"SSH-2.0-me\r\n")
        assert replaying.recv(100) == b"first"
        assert replaying.send(b"xyz-and-more") == 3  # the end of what the loaded server heard, swallowed
        assert replaying.recv(100) == b"second"
        replaying.sendall(b"-and-more")
        loaded.sendall(b"live")
        assert replaying.recv(100) == b"live"
        replaying.close()
        assert loaded.recv(100) == b"-and-more"  # nothing the loaded server heard before came through


def test_a_client_with_another_banner_does_not_reach_the_loaded_server() -> None:
    loaded, host = socket.socketpair()
    with loaded:
        record = SessionRecord(((0, b"SSH-2.0-sshd\r\n"),), b"SSH-2.0-me_1\r\n", 20, b"", b"")
        replaying = ReplayingSocket(host, record)
        with pytest.raises(ConnectionError, match="not the recorded"):
            replaying.sendall(b"SSH-2.0-me_2\r\n")
        replaying.close()
        assert loaded.recv(100) == b""


def test_a_session_without_the_repeatable_key_exchange_is_not_recorded() -> None:
    guest, host = socket.socketpair()
    with guest:
        recording = RecordingSocket(host, b"")
        transport = type("T", (), {"recorded_kex_init": None, "recorded_key": None})()
        with pytest.raises(paramiko.SSHException, match="cannot be replayed"):
            recording.freeze(transport, b"SSH-2.0-me\r\n")  # type: ignore[arg-type]
        recording.close()


# -- a whole replay against a paramiko server ------------------------------------------------------------


def _server_thread() -> paramiko.Transport | None:
    thread = threading.current_thread()
    return thread if isinstance(thread, paramiko.Transport) and thread.server_mode else None


class _SameEveryTime:
    """Random bytes for server transport threads that are the same for every server (os.urandom else)."""

    def __init__(self) -> None:
        self.drawn: dict[int, int] = {}
        self.real = os.urandom

    def __call__(self, count: int) -> bytes:
        server = _server_thread()
        if server is None:
            return self.real(count)
        n = self.drawn.get(id(server), 0)
        self.drawn[id(server)] = n + 1
        return hashlib.sha256(f"{n}".encode()).digest()[:count].ljust(count, b"\0")


class _Server(paramiko.ServerInterface):
    """Logs in the client key; `exec` of the clock setter says ready and exits 0 once it has read a line;
    any other command says the line it reads back."""

    def __init__(self, keys: SshKeys) -> None:
        self.client_key = paramiko.Ed25519Key.from_private_key_file(str(keys.client_key))

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == self.client_key else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self._run, args=(channel, command), daemon=True).start()
        return True

    @staticmethod
    def _run(channel: paramiko.Channel, command: bytes) -> None:
        # Nothing is said before a line is read: said at once, it could overtake the exec request's answer.
        clock = b"read -r t" in command
        if clock:
            channel.sendall(b"ready\n")
        line = b""
        while not line.endswith(b"\n"):
            chunk = channel.recv(64)
            if not chunk:
                return
            line += chunk
        if not clock:
            channel.sendall(line)
        channel.send_exit_status(0)
        channel.close()


def _serve(sock: socket.socket, keys: SshKeys) -> paramiko.Transport:
    transport = paramiko.Transport(sock)
    transport.add_server_key(paramiko.Ed25519Key.from_private_key_file(str(keys.host_key)))
    transport.start_server(event=threading.Event(), server=_Server(keys))  # returns at once
    return transport


class _Tap(socket.socket):
    """What a server heard."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.heard = bytearray()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        self.heard += data
        return data


def _once(sock: socket.socket) -> Callable[[], socket.socket]:
    handed: list[socket.socket] = []

    def connect() -> socket.socket:
        if handed:
            raise paramiko.AuthenticationException("a second attempt: the first one failed")
        handed.append(sock)
        return sock

    return connect


def _read_exactly(sock: socket.socket, count: int) -> None:
    while count:
        chunk = sock.recv(min(count, 65536))
        assert chunk, "the server hung up"
        count -= len(chunk)


def test_a_replayed_client_agrees_with_the_server_in_the_saved_state(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    keys = make_keys(tmp_path)
    monkeypatch.setattr(os, "urandom", _SameEveryTime())
    real_generate = kex_curve25519.X25519PrivateKey.generate

    def generate() -> Any:  # the servers' ephemeral key: the same for both
        if _server_thread() is None:
            return real_generate()
        return kex_curve25519.X25519PrivateKey.from_private_bytes(b"\x07" * 32)

    monkeypatch.setattr(kex_curve25519.X25519PrivateKey, "generate", staticmethod(generate))

    # Record: the client logs in to server 1 and starts the clock setter, as before a save.
    server_end, client_end = socket.socketpair()
    tap = _Tap(server_end)
    server1 = _serve(tap, keys)
    recording = RecordingSocket(client_end, b"")
    connection = SshConnection.to_machine(lambda: recording, keys, record=True, timeout=10)
    setter = GuestClockSetter.start(connection, timeout=10)
    time.sleep(0.2)  # the save: once nothing moves
    transport = connection.client.get_transport()
    assert isinstance(transport, RepeatableTransport)
    record = recording.freeze(transport, f"{transport.local_version}\r\n".encode())
    setter.set()  # the machine that goes on after the save
    heard = bytes(tap.heard[:record.client_length])
    connection.close()
    server1.close()

    # The load: server 2 hears what server 1 had heard and says what it had said.
    loaded, host = socket.socketpair()
    server2 = _serve(loaded, keys)
    host.sendall(heard)
    _read_exactly(host, sum(len(chunk) for _, chunk in record.server_said))

    # The replay: no handshake reaches server 2; the time reaches its waiting channel, then a new command runs.
    replayed = SshConnection.to_machine(_once(ReplayingSocket(host, record)), keys, replay=record, timeout=10)
    try:
        GuestClockSetter.start(replayed, timeout=10).set()
        stdin, stdout, _ = replayed.client.exec_command("a new command", timeout=10)
        stdin.write(b"a line\n")
        assert stdout.read() == b"a line\n" and stdout.channel.recv_exit_status() == 0
    finally:
        replayed.close()
        server2.close()
