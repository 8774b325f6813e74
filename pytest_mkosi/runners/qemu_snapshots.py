"""Fresh qemu machines: the runner's snapshot() once after boot and restore() before each test that wants
a fresh machine (the QMP jobs and the SSH session saved with the machine are runners/snapshot.py's)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import paramiko

from imagebuild.errors import RunError
from imagebuild.launch import guest_ssh
from pytest_mkosi.runners.snapshot import (
    SshPort,
    VmSnapshots,
    load_with_session,
    replay_session,
    save_with_session,
    set_guest_clock,
)

if TYPE_CHECKING:
    from imagebuild.launch.ssh_keys import SshKeys
    from pytest_mkosi.runners.qmp import Qmp
    from pytest_mkosi.runners.readiness import ReadyPort
    from pytest_mkosi.transport.replay import SessionRecord
    from pytest_mkosi.transport.ssh import SocketFactory, SshConnection

log = logging.getLogger("pytest_mkosi")


class QemuSnapshots:
    """Mixed into runners.qemu.QemuRunner, whose state and connection methods it uses."""

    name: str
    restore_fallbacks: int
    _qmp: Qmp | None
    _channel: guest_ssh.GuestChannel | None
    _keys: SshKeys | None
    _ssh: SshConnection | None
    _ready: ReadyPort | None
    # The start of the SSH session saved with each snapshot (snapshot()).
    _saved_sessions: dict[str, SessionRecord]
    _start_paused: bool

    if TYPE_CHECKING:
        def is_running(self) -> bool: ...
        def start(self, *, timeout: float) -> None: ...
        def connection(self) -> SshConnection: ...
        def release_ssh(self, *, timeout: float = 120.0) -> None: ...
        def reconnect(self, *, timeout: float = 120.0, settle: bool = True) -> None: ...
        def _socket_factory(self) -> SocketFactory: ...
        def _close_ssh(self) -> None: ...
        def _connect(self, deadline: float) -> None: ...

    def _ssh_port(self) -> SshPort | None:
        """qemu's end of the one-stream SSH port (virtio-serial); None for vsock, where every connection is new."""
        if self._qmp is None or self._channel is None or self._channel.kind != "virtio-serial":
            return None
        return SshPort(self._qmp, self._socket_factory(), guest_ssh.SSH_CHARDEV)

    def snapshot(self, tag: str = "fresh", *, timeout: float = 120.0) -> float:
        """Save the running machine (RAM, devices, swtpm's state, the overlay) as `tag`; seconds taken. Over
        virtio-serial it is saved in the middle of an SSH session, which every restore replays (snapshot.py)."""
        if self._qmp is None or not self.is_running():
            raise RunError(f"{self.name} is not running: nothing to snapshot")
        deadline = time.monotonic() + timeout
        # A command first: once, closing the connection right after start()'s handshake was followed by no
        # announcement within 120 s; with a command run first it always came (within about 1 s).
        self.connection().run("true", timeout=timeout)
        port = self._ssh_port()
        if port is None:
            return VmSnapshots(self._qmp).save(tag)
        assert self._keys is not None
        self.release_ssh(timeout=timeout)
        seconds, self._ssh, self._saved_sessions[tag] = save_with_session(port, tag, self._keys, deadline=deadline)
        return seconds

    def restore(self, tag: str = "fresh", *, timeout: float = 60.0) -> float:
        """Put the machine back into the state saved as `tag` and reconnect SSH; seconds until SSH-ready.
        A machine that is off (a test powered it off) gets a new qemu that loads it without a boot. The guest's
        clock is set to the host's: after a load it shows the time of the save (qemu does not advance it)."""
        started = time.monotonic()
        if not self.is_running():  # a test powered it off: a qemu that loads the snapshot instead of booting
            self._start_paused = True
            try:
                self.start(timeout=timeout)
            finally:
                self._start_paused = False
        if self._qmp is None:
            raise RunError(f"{self.name} is not running: start it (and snapshot it) before restoring")
        deadline = time.monotonic() + timeout
        port, record = self._ssh_port(), self._saved_sessions.get(tag)
        if port is None or record is None or self._keys is None:
            self._close_ssh()
            VmSnapshots(self._qmp).load(tag)
            self._qmp.command("cont")  # loaded into a paused qemu (above), it stays paused
            if self._ready is not None:
                self._ready.drain()
            self._connect(deadline)
            set_guest_clock(self.connection())
            return time.monotonic() - started
        sock = load_with_session(port, tag, self._close_ssh, deadline=deadline)
        if self._ready is not None:
            self._ready.drain()  # announcements of the machine of before the load
        try:
            self._ssh = replay_session(sock, record, self._keys, deadline=deadline)
        except (RunError, ConnectionError, OSError, paramiko.SSHException, EOFError) as e:
            # The restored boot is fine; its next sshd (started when this one sees the hang-up) takes a normal
            # handshake, at the price of its start.
            sock.close()
            self.restore_fallbacks += 1
            log.warning("%s: the SSH session saved with the machine could not be replayed (%s); connecting to "
                        "a fresh sshd of the restored boot instead", self.name, e)
            self.reconnect(timeout=max(1.0, deadline - time.monotonic()))
            set_guest_clock(self.connection())
        return time.monotonic() - started

