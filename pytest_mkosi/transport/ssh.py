"""SSH over any byte stream (an AF_UNIX socket here, AF_VSOCK or TCP elsewhere) with paramiko.

One transport is kept for the whole session and each command opens a channel on it, so a command costs
a channel round trip, not a new connection.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from pathlib import Path

import paramiko

from pytest_mkosi.machine.api import CommandResult

SocketFactory = Callable[[], socket.socket]


def unix_socket(path: Path) -> SocketFactory:
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            raise
        return sock

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
        key_file: Path,
        host_key: paramiko.PKey | None = None,
        hostname: str = "machine",
        username: str = "root",
        timeout: float = 30.0,
    ) -> SshConnection:
        """Connect, retrying while the machine's sshd is not there yet, until `timeout`."""
        client = paramiko.SSHClient()
        if host_key is not None:
            client.get_host_keys().add(hostname, host_key.get_name(), host_key)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            # The image ships no host key of its own (made at first boot): nothing to pin it to.
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = factory()
                client.connect(
                    hostname,
                    username=username,
                    key_filename=str(key_file),
                    sock=sock,
                    look_for_keys=False,
                    allow_agent=False,
                    timeout=max(1.0, deadline - time.monotonic()),
                    banner_timeout=max(1.0, deadline - time.monotonic()),
                )
                return cls(client)
            except (OSError, paramiko.SSHException, EOFError) as e:
                if isinstance(e, paramiko.BadHostKeyException | paramiko.AuthenticationException):
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no SSH connection within {timeout:.0f}s: {e}") from e
                time.sleep(0.05)

    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionError("the SSH connection to the machine is closed")
        channel = transport.open_session(timeout=timeout)
        try:
            channel.exec_command(command)
            channel.shutdown_write()
            stdout, stderr = _collect_output(channel, command, timeout)
            status = channel.recv_exit_status()
        finally:
            channel.close()
        return CommandResult(command, status, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def close(self) -> None:
        self.client.close()


# A command that exited while a process it started still holds its stdout open (`cmd &`) would never
# send EOF; after its exit status arrives we wait this long for the output to end, then return.
LINGER_AFTER_EXIT = 1.0


def _collect_output(channel: paramiko.Channel, command: str, timeout: float | None) -> tuple[bytes, bytes]:
    """Read stdout and stderr together (neither may fill the window and block the other) until EOF."""
    out: list[bytes] = []
    err: list[bytes] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    exited_at: float | None = None

    def drain() -> None:
        while channel.recv_ready():
            out.append(channel.recv(65536))
        while channel.recv_stderr_ready():
            err.append(channel.recv_stderr(65536))

    while not channel.eof_received:
        drain()
        now = time.monotonic()
        if channel.exit_status_ready():
            exited_at = exited_at or now
            if now - exited_at > LINGER_AFTER_EXIT:
                break
        if deadline is not None and now > deadline:
            raise TimeoutError(f"command did not finish within {timeout}s: {command}")
        # The channel's fd wakes us for data and EOF; the exit status alone does not, hence the cap.
        select.select([channel], [], [], 0.05)
    drain()
    return b"".join(out), b"".join(err)
