"""SSH over any byte stream (an AF_UNIX socket here, AF_VSOCK, virtio-serial or TCP elsewhere) with paramiko.

One transport is kept for the machine's boot and each command opens a channel on it, so a command costs a
channel round trip, not a new connection.

How a command runs in the guest (`SshConnection.run`): the login shell executes

    printf '%s\n' $$; COMMAND
    rc=$?; printf END; printf END >&2; exit $rc

sshd makes the login shell a session and process group leader, and everything COMMAND starts stays in that
group (unless it leaves it on purpose, as daemons do): when the timeout passes, a second channel kills the
whole group, whose id the first line of stdout told us, so a timed out command and its children are gone.
END is a random marker printed after COMMAND has exited: once both streams have shown it, all output
COMMAND wrote has arrived, and we need not wait for an EOF that never comes when COMMAND left a background
process (`cmd &`) holding its stdout open. That process's later output is dropped.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from imagebuild.launch.serial_sshd import PrefixedSocket, open_fresh_sshd
from imagebuild.launch.ssh_keys import HOST_KEY_ALIAS, SshKeys
from pytest_mkosi.machine.result import CommandResult, CommandTimeout
from pytest_mkosi.transport.replay import RepeatableTransport, SessionRecord, disabled_kex

SocketFactory = Callable[[], socket.socket]
# Called with ("stdout" | "stderr", line) for every complete line while a command runs (stream=True).
LineSink = Callable[[str, str], None]

# How long after killing a timed out command we wait for its channel to close.
KILL_GRACE = 5.0
# After this many seconds in which the host sent nothing, it sends an SSH_MSG_IGNORE-like keepalive: under
# TCG a guest's sshd on a virtio-serial port can miss the wake-up of a read and sleep on a request that has
# arrived (every byte reached the port; sshd was in ppoll with no timeout); any later byte wakes it.
KEEPALIVE_SECONDS = 2


def unix_socket(path: Path, *, check: Callable[[], None] | None = None) -> SocketFactory:
    """Connections to an AF_UNIX socket (nspawn's bound socket, qemu's end of a virtio-serial port).

    `check` runs before every attempt and raises (not an OSError: those are retried) when the machine is
    gone, so that SshConnection.connect fails at once instead of retrying until its timeout."""

    def connect() -> socket.socket:
        if check is not None:
            check()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            raise
        return sock

    return connect


def fresh_sshd_socket(factory: SocketFactory, *, deadline: float) -> SocketFactory:
    """Connections to a virtio-serial port through `factory` that reach a fresh sshd (serial_sshd: never the
    rest of an old session), with its banner replayed to paramiko."""

    def connect() -> socket.socket:
        sock, banner = open_fresh_sshd(factory, deadline=deadline)
        return PrefixedSocket(sock, banner)

    return connect


class SshConnection:
    """A connected paramiko client plus command helpers."""

    def __init__(self, client: paramiko.SSHClient) -> None:
        self.client = client

    @classmethod
    def connect(
        cls,
        factory: SocketFactory,
        *,
        key_file: Path | None = None,
        pkey: paramiko.PKey | None = None,
        host_key: paramiko.PKey | None = None,
        hostname: str = "machine",
        username: str = "root",
        timeout: float = 30.0,
        transport_factory: Callable[..., paramiko.Transport] | None = None,
        disabled_algorithms: dict[str, list[str]] | None = None,
        keepalive: bool = True,
    ) -> SshConnection:
        """Connect, retrying while the machine's sshd is not there yet, until `timeout`. `keepalive` False:
        the host sends nothing of its own until enable_keepalive() (a session being recorded: replay.py)."""
        deadline = time.monotonic() + timeout
        while True:
            client = paramiko.SSHClient()
            if host_key is not None:
                client.get_host_keys().add(hostname, host_key.get_name(), host_key)
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            else:
                # The image ships no host key of its own (made at first boot): nothing to pin it to yet.
                client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                sock = factory()
                client.connect(
                    hostname,
                    username=username,
                    key_filename=None if key_file is None else str(key_file),
                    pkey=pkey,
                    sock=sock,
                    look_for_keys=False,
                    allow_agent=False,
                    timeout=max(1.0, deadline - time.monotonic()),
                    banner_timeout=max(1.0, deadline - time.monotonic()),
                    auth_timeout=max(1.0, deadline - time.monotonic()),
                    transport_factory=transport_factory,
                    disabled_algorithms=disabled_algorithms,
                )
                connection = cls(client)
                if keepalive:
                    connection.enable_keepalive()
                return connection
            except (OSError, paramiko.SSHException, EOFError) as e:
                client.close()
                if isinstance(e, paramiko.BadHostKeyException | paramiko.AuthenticationException):
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no SSH connection within {timeout:.0f}s: {e}") from e
                time.sleep(0.02)

    @classmethod
    def to_machine(cls, factory: SocketFactory, keys: SshKeys, *, timeout: float,
                   replay: SessionRecord | None = None, record: bool = False) -> SshConnection:
        """Log in with the machine's client key, its sshd pinned to the host key made for it (ssh_keys).
        `record`: a session that can be replayed (replay.py); `replay`: the client of such a session, replayed
        (the factory gives a ReplayingSocket). Both send no keepalive until enable_keepalive()."""
        host_key = paramiko.Ed25519Key.from_private_key_file(str(keys.host_key))
        if not record and replay is None:
            return cls.connect(factory, key_file=keys.client_key, host_key=host_key, hostname=HOST_KEY_ALIAS,
                               timeout=timeout)

        def repeatable(sock: socket.socket, **kwargs: Any) -> paramiko.Transport:
            return RepeatableTransport(sock, replay=replay, **kwargs)

        return cls.connect(factory, key_file=keys.client_key, host_key=host_key, hostname=HOST_KEY_ALIAS,
                           timeout=timeout, transport_factory=repeatable, disabled_algorithms=disabled_kex(),
                           keepalive=False)

    def enable_keepalive(self) -> None:
        transport = self.client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_SECONDS)

    def is_active(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def host_key(self) -> paramiko.PKey | None:
        transport = self.client.get_transport()
        return None if transport is None else transport.get_remote_server_key()

    def run(
        self, command: str, *, timeout: float | None = None, on_line: LineSink | None = None,
        display: str | None = None,
    ) -> CommandResult:
        """Run a shell line in the guest; kill it there when `timeout` passes (raise CommandTimeout).

        `display` is how the command is named in the result and errors (default: the line itself).
        """
        __tracebackhide__ = True
        display = command if display is None else display
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionError("the SSH connection to the machine is closed")
        marker = f"<pytest-mkosi-end-{secrets.token_hex(12)}>"
        line = f"printf '%s\\n' $$; {command}\nrc=$?; printf %s '{marker}'; printf %s '{marker}' >&2; exit $rc"
        started = time.monotonic()
        try:
            channel = transport.open_session(timeout=30.0)
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise ConnectionError(f"the SSH connection to the machine went down: {e}") from None
        streams = _Streams(marker.encode(), on_line)
        try:
            channel.exec_command(line)
            channel.shutdown_write()
            outcome = streams.collect(channel, None if timeout is None else started + timeout)
            if outcome == "timeout":
                self._kill_group(streams.group)
                streams.collect(channel, time.monotonic() + KILL_GRACE)
            status = channel.recv_exit_status() if channel.exit_status_ready() else -1
        except (paramiko.SSHException, EOFError, OSError):
            # The transport went down under the command (a reboot or power-off from inside it).
            outcome, status = "closed", -1
        finally:
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                channel.close()
        duration = time.monotonic() - started
        stdout, stderr = streams.text()
        if outcome == "closed":
            raise ConnectionError(f"the connection to the machine went down while running: {display}")
        if outcome == "timeout":
            raise CommandTimeout(display, timeout or 0.0, stdout, stderr)
        return CommandResult(display, status, stdout, stderr, duration)

    def _kill_group(self, group: int | None) -> None:
        """SIGKILL a timed out command's process group, on a channel of its own."""
        transport = self.client.get_transport()
        if group is None or group <= 1 or transport is None or not transport.is_active():
            return
        channel = transport.open_session(timeout=10.0)
        try:
            channel.exec_command(f"kill -KILL -- -{group}")
            channel.status_event.wait(10.0)
        finally:
            channel.close()

    def settle(self, *, timeout: float = 30.0) -> bool:
        """One round trip (a global request sshd answers, in order, after everything it queued before), so
        that nothing sshd had to send is still on its way: an idle sshd only answers. Before a voluntary
        hang-up on a virtio-serial port: a guest's write to a port whose host side has gone blocks until
        the next host connects, so an sshd caught writing (e.g. the host keys it announces right after the
        login, or its reply to a channel close) would never exit, and would then speak into the next
        connection. A guest that does not answer within `timeout` is hung up on anyway. Returns whether it
        answered (False also when the connection is closed): whether the stream still moves."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            return False
        # paramiko's wait has no timeout of its own.
        request = threading.Thread(target=transport.global_request, args=("keepalive@openssh.com",),
                                   kwargs={"wait": True}, daemon=True)
        request.start()
        request.join(timeout)
        return not request.is_alive() and transport.is_active()

    def close(self) -> None:
        self.client.close()


@dataclass
class _Stream:
    name: str
    data: bytearray = field(default_factory=bytearray)
    done: bool = False
    emitted: int = 0  # how much of data went to the line sink already


@dataclass
class _Streams:
    marker: bytes
    on_line: LineSink | None
    # The process group of the command, from the first line of stdout (None until it arrived).
    group: int | None = None
    _header: bytearray = field(default_factory=bytearray)
    out: _Stream = field(default_factory=lambda: _Stream("stdout"))
    err: _Stream = field(default_factory=lambda: _Stream("stderr"))

    def collect(self, channel: paramiko.Channel, deadline: float | None) -> str:
        """Read both streams together (neither may fill its window and block the other) until both showed
        the end marker and the exit status is in, or EOF. Returns "done", "timeout" (`deadline` passed) or
        "closed" (the connection went down under the command: the guest rebooted or powered off)."""
        while True:
            self._drain(channel)
            if channel.closed and not channel.eof_received:
                return "closed"
            if channel.eof_received or (self.out.done and self.err.done):
                break
            if deadline is not None and time.monotonic() > deadline:
                return "timeout"
            # The channel's fd wakes us for data on either stream and for EOF.
            select.select([channel], [], [], 0.5)
        # The exit status follows the output; it does not wake the fd, but its event does.
        remaining = 5.0 if deadline is None else max(0.0, deadline - time.monotonic())
        channel.status_event.wait(remaining)
        self._drain(channel)
        self._emit(self.out, final=True)
        self._emit(self.err, final=True)
        return "done" if channel.exit_status_ready() else "timeout"

    def _drain(self, channel: paramiko.Channel) -> None:
        while channel.recv_ready():
            chunk = channel.recv(65536)
            if self.group is None:
                chunk = self._read_header(chunk)
            self._feed(self.out, chunk)
        while channel.recv_stderr_ready():
            self._feed(self.err, channel.recv_stderr(65536))

    def _read_header(self, chunk: bytes) -> bytes:
        self._header += chunk
        head, newline, rest = bytes(self._header).partition(b"\n")
        if not newline:
            return b""
        self.group = int(head) if head.isdigit() else 0
        return rest

    def _feed(self, stream: _Stream, chunk: bytes) -> None:
        if stream.done or not chunk:
            return  # what a background process writes after the command ended is not the command's
        start = max(0, len(stream.data) - len(self.marker))
        stream.data += chunk
        at = stream.data.find(self.marker, start)
        if at >= 0:
            del stream.data[at:]
            stream.done = True
        self._emit(stream, final=False)

    def _emit(self, stream: _Stream, *, final: bool) -> None:
        if self.on_line is None:
            return
        # Only complete lines while the stream goes on (the marker has no newline, so it is never in one).
        pending = bytes(stream.data[stream.emitted:])
        cut = len(pending) if final else pending.rfind(b"\n") + 1
        for text in pending[:cut].decode(errors="replace").splitlines():
            self.on_line(stream.name, text)
        stream.emitted += cut

    def text(self) -> tuple[str, str]:
        return self.out.data.decode(errors="replace"), self.err.data.decode(errors="replace")
