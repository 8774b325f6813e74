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

Where the login shell is bash, Machine runs its commands through `run_bash` instead: one bash per connection
takes them one after another (command_shell.py), with the same process group, marker and timeout handling,
and the exec channel is what it falls back to.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko

from imagebuild.launch.serial_sshd import PrefixedSocket, open_fresh_sshd
from imagebuild.launch.ssh_keys import HOST_KEY_ALIAS, SshKeys
from pytest_mkosi.machine.result import CommandResult, CommandTimeout
from pytest_mkosi.transport.command_shell import KILL_GRACE, CommandShell
from pytest_mkosi.transport.replay import RepeatableTransport, SessionRecord, disabled_kex
from pytest_mkosi.transport.streams import LineSink, OutputStreams

SocketFactory = Callable[[], socket.socket]
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
        # The persistent bash that run_bash() uses (command_shell.py), started at its first command; the
        # lock keeps it to one command at a time (a second thread's command takes an exec channel).
        self._shell: CommandShell | None = None
        self._shell_lock = threading.Lock()

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
        streams = OutputStreams(marker.encode(), on_line)
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

    def run_bash(
        self, code: str, *, timeout: float | None = None, on_line: LineSink | None = None,
        display: str | None = None,
    ) -> CommandResult:
        """run() for a guest whose login shell is bash: CODE runs on the connection's command shell
        (command_shell.py), or on an exec channel (in a subshell) when the shell is busy or cannot be had."""
        __tracebackhide__ = True
        display = code if display is None else display
        if self._shell_lock.acquire(blocking=False):
            try:
                # A shell retired before it took the command (see try_run) is replaced once.
                for _ in range(2):
                    shell = self._command_shell()
                    if shell is None:
                        break
                    result = shell.try_run(code, timeout=timeout, display=display, on_line=on_line,
                                           kill_group=self._kill_group)
                    if result is not None:
                        return result
            finally:
                self._shell_lock.release()
        return self.run(f"({code}\n)", timeout=timeout, on_line=on_line, display=display)

    def _command_shell(self) -> CommandShell | None:
        if self._shell is not None and self._shell.usable:
            return self._shell
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionError("the SSH connection to the machine is closed")
        self._shell = CommandShell.open(transport)
        return self._shell

    def close_command_shell(self, *, wait: float = 0.0) -> None:
        # Not under the lock: a command still running on the shell ends with the channel.
        shell, self._shell = self._shell, None
        if shell is not None:
            shell.close(wait=wait)

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
        # The shell first, until it has exited: what sshd sends for its channel comes before the reply.
        self.close_command_shell(wait=min(timeout, 5.0))
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
        self.close_command_shell()
        self.client.close()
