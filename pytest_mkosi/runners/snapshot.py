"""qemu snapshots of a booted machine over QMP: save once, load it back before every test that wants it fresh.

A snapshot holds the guest's RAM and device state and the qcow2 overlay's blocks at that moment, all inside
the overlay file (qcow2 internal snapshots). The QMP `snapshot-save`/`snapshot-load` jobs are used rather
than HMP's savevm/loadvm because they take the list of disks to snapshot: HMP savevm refuses to run while
any writable disk cannot hold snapshots, and the OVMF variable store is a raw pflash file. Leaving it out
is harmless for tests: the firmware's variables only matter at the next boot, and the firmware wrote them
before the snapshot was taken.

swtpm needs nothing of its own: qemu's tpm-emulator backend fetches swtpm's permanent and volatile state
blobs into the device state when saving and pushes them back into the running swtpm when loading, so
PCRs, the event log (guest RAM) and the TPM agree after a load.
"""

from __future__ import annotations

import itertools
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paramiko

from imagebuild.errors import RunError
from imagebuild.launch.serial_sshd import open_fresh_sshd
from pytest_mkosi.runners.qmp import Qmp, QmpError
from pytest_mkosi.transport.replay import RecordingSocket, RepeatableTransport, ReplayingSocket, SessionRecord
from pytest_mkosi.transport.ssh import SshConnection

if TYPE_CHECKING:
    from imagebuild.launch.ssh_keys import SshKeys

# The drive id imagebuild.launch.qemu gives the image's disk.
IMAGE_DRIVE = "image"
_job_ids = itertools.count(1)


class SnapshotError(QmpError):
    pass


def _answer(response: object, what: str) -> Any:
    """The "return" of a QMP response (qemu.qmp's legacy client hands back the raw response)."""
    if isinstance(response, dict):
        if "error" in response:
            error = response["error"]
            raise SnapshotError(f"QMP {what}: {error.get('desc', error) if isinstance(error, dict) else error}")
        if "return" in response:
            return response["return"]
    return response


@dataclass
class VmSnapshots:
    qmp: Qmp
    drive: str = IMAGE_DRIVE
    timeout: float = 120.0

    def disk_node(self) -> str:
        """The block node of the image's drive: the jobs take node names, not drive ids."""
        for device in _answer(self.qmp.command("query-block"), "query-block"):
            if device.get("device") == self.drive and device.get("inserted"):
                inserted = device["inserted"]
                if inserted.get("drv") != "qcow2":
                    raise SnapshotError(f"the machine's disk is {inserted.get('drv')}, not a qcow2 overlay, which "
                                        "is where qemu keeps snapshots: fresh qemu machines need a disk image "
                                        "(Format=disk)")
                return str(inserted["node-name"])
        raise SnapshotError(f"qemu has no drive {self.drive!r} to keep a snapshot in")

    def save(self, tag: str) -> float:
        """Save the running machine as `tag` (replacing an older one); the guest is paused meanwhile and
        runs on afterwards. Returns the seconds it took."""
        node = self.disk_node()
        self.delete(tag)
        return self._job("snapshot-save", tag=tag, vmstate=node, devices=[node])

    def load(self, tag: str) -> float:
        """Put the machine back into the state saved as `tag`; it runs on from there."""
        node = self.disk_node()
        return self._job("snapshot-load", tag=tag, vmstate=node, devices=[node])

    def delete(self, tag: str) -> None:
        node = self.disk_node()
        if any(s.get("name") == tag for s in self._snapshots(node)):
            self._job("snapshot-delete", tag=tag, devices=[node])

    def _snapshots(self, node: str) -> list[dict[str, Any]]:
        for image in _answer(self.qmp.command("query-named-block-nodes", flat=True), "query-named-block-nodes"):
            if image.get("node-name") == node:
                return list(image.get("image", {}).get("snapshots", []))
        return []

    def _job(self, command: str, **arguments: object) -> float:
        job_id = f"pytest-mkosi-{command}-{next(_job_ids)}"
        started = time.monotonic()
        _answer(self.qmp.command(command, **{"job-id": job_id, **arguments}), command)
        deadline = started + self.timeout
        while True:
            jobs = {j["id"]: j for j in _answer(self.qmp.command("query-jobs"), "query-jobs")}
            job = jobs.get(job_id)
            if job is None:
                raise SnapshotError(f"QMP {command}: job {job_id} vanished")
            if job["status"] == "concluded":
                _answer(self.qmp.command("job-dismiss", id=job_id), "job-dismiss")
                if job.get("error"):
                    raise SnapshotError(f"QMP {command} {arguments.get('tag')!r} failed: {job['error']}")
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise SnapshotError(f"QMP {command} did not finish within {self.timeout:g}s (status {job['status']})")
            time.sleep(0.01)


# -- a snapshot with an SSH session in it: a restore replays the session's start instead of a handshake -------
#
# Over virtio-serial the guest's `sshd -i` reads the port: with no host connected it reads EOF and exits, and
# systemd starts the next one after a pause, so a machine saved while the host is away is saved between two
# sshds, and every restore would pay for an sshd start and a handshake under TCG (seconds). Instead the host
# connects to a fresh sshd before the save, records the session (transport/replay.py) through the key
# exchange, the login and the start of the clock setter (a channel on which the guest's shell waits for the
# host's time), stops the guest, takes in what it sent last, and saves: the snapshot holds that session and
# the port's "host connected" state. A restore loads it while a new host connection is up (qemu then tells
# the guest nothing: connected before, connected now), replays the session's start on the host and sends
# the time on the waiting channel: the guest's first work after a load is setting its clock.


def read_available(sock: socket.socket, wait: float = 0.0) -> bytes:
    """Whatever has arrived on `sock` (waiting up to `wait` for the first bytes)."""
    data = b""
    while select.select([sock], [], [], wait)[0]:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        wait = 0.0
    return data


@dataclass
class SshPort:
    """qemu's host end of the guest's SSH port: the chardev and how to connect to it."""

    qmp: Qmp
    connect: Callable[[], socket.socket]
    chardev: str

    def connected(self) -> bool:
        for device in _answer(self.qmp.command("query-chardev"), "query-chardev"):
            if device.get("label") == self.chardev:
                return not str(device.get("filename", "")).startswith("disconnected:")
        raise SnapshotError(f"qemu has no chardev {self.chardev!r}")

    def wait_connected(self, connected: bool, deadline: float) -> None:
        """Until qemu has seen the host side (dis)connect: it handles that in its main loop, as QMP."""
        while self.connected() != connected:
            if time.monotonic() > deadline:
                state = "connect" if connected else "disconnect"
                raise SnapshotError(f"qemu did not see the host {state} on chardev {self.chardev}")
            time.sleep(0.002)


def _handed_once(sock: socket.socket) -> Callable[[], socket.socket]:
    """A socket factory for SshConnection that hands out `sock` once: a failed handshake cannot be retried
    on the same sshd."""
    handed: list[socket.socket] = []

    def connect() -> socket.socket:
        if handed:
            raise RunError("the SSH handshake with the sshd of the snapshot failed")
        handed.append(sock)
        return sock

    return connect


def save_with_session(port: SshPort, tag: str, keys: SshKeys, *, deadline: float
                      ) -> tuple[float, SshConnection, SessionRecord]:
    """Connect to a fresh sshd on the SSH port (no one else may be connected; serial_sshd: never an old
    session's bytes), record the session's start and save the machine as `tag` in the middle of it. Returns
    the seconds the save took, the connection (the running machine goes on with it) and the record every
    restore replays."""
    try:
        sock, banner = open_fresh_sshd(port.connect, deadline=deadline)
    except TimeoutError as e:
        raise SnapshotError(f"no sshd answered on the SSH port to be saved with the machine: {e}") from None
    recording = RecordingSocket(sock, banner)
    connection = SshConnection.to_machine(_handed_once(recording), keys, record=True,
                                          timeout=max(1.0, deadline - time.monotonic()))
    try:
        clock = GuestClockSetter.start(connection, timeout=max(1.0, deadline - time.monotonic()))
        transport = connection.client.get_transport()
        if not isinstance(transport, RepeatableTransport):
            raise SnapshotError("the SSH session to be saved with the machine cannot be replayed")
        recording.wait_quiet(deadline=deadline)  # the guest has taken in all the client said
        port.qmp.command("stop")
        try:
            recording.wait_quiet(deadline=deadline)  # everything the guest sent before it stopped, recorded
            record = recording.freeze(transport, f"{transport.local_version}\r\n".encode())
            seconds = VmSnapshots(port.qmp).save(tag)
        finally:
            port.qmp.command("cont")
        connection.enable_keepalive()
        clock.set()  # the running machine's setter: its clock is right anyway
    except BaseException:
        connection.close()
        raise
    return seconds, connection, record


def load_with_session(port: SshPort, tag: str, close_current: Callable[[], None], *, deadline: float
                      ) -> socket.socket:
    """Load `tag` (saved by save_with_session) and return a socket to the sshd saved with it. The guest is
    paused from before the new connection on, so that the machine of before the load writes nothing into
    it; the current one is closed before the pause (measured: qemu saw the hang-up within 1-2 ms under load
    instead of about 0.1 s, but at idle it still took about 0.1 s)."""
    close_current()
    port.qmp.command("stop")
    try:
        port.wait_connected(False, deadline)
        sock = port.connect()
        try:
            port.wait_connected(True, deadline)
            VmSnapshots(port.qmp).load(tag)
            read_available(sock)  # written by the machine of before the load
        except BaseException:
            sock.close()
            raise
    finally:
        port.qmp.command("cont")
    return sock


def replay_session(sock: socket.socket, record: SessionRecord, keys: SshKeys, *, deadline: float) -> SshConnection:
    """The saved session's client, replayed on `sock` (from load_with_session), with the guest's clock set;
    raises (paramiko's errors, ConnectionError, RunError) when the replay does not fit the loaded sshd."""
    connection = SshConnection.to_machine(_handed_once(ReplayingSocket(sock, record)), keys, replay=record,
                                          timeout=max(1.0, deadline - time.monotonic()))
    try:
        GuestClockSetter.start(connection, timeout=max(1.0, deadline - time.monotonic())).set()
    except BaseException:
        connection.close()
        raise
    connection.enable_keepalive()
    return connection


class GuestClockSetter:
    """The guest's clock set to the host's (after a load it shows the time of the save): a shell in the
    guest waits for the time, which the host sends when set() is called. Sending it only once the shell
    waits keeps a TCG guest's slow command start out of the error; a snapshot saves the waiting shell."""

    def __init__(self, channel: paramiko.Channel, timeout: float) -> None:
        self.channel = channel
        self.timeout = timeout

    @classmethod
    def start(cls, connection: SshConnection, *, timeout: float = 30.0) -> GuestClockSetter:
        transport = connection.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionError("the SSH connection to the machine is closed")
        channel = transport.open_session(timeout=timeout)
        try:
            channel.settimeout(timeout)
            # exec: no fork of the shell for date (under TCG a fork is as slow as a round trip).
            channel.exec_command('echo ready; read -r t; exec date -u -s "@$t" >/dev/null')
            said = b""
            while b"ready\n" not in said:
                chunk = channel.recv(64)
                if not chunk:
                    raise RunError("the guest's shell that sets the clock ended before it was ready")
                said += chunk
        except BaseException:
            channel.close()
            raise
        return cls(channel, timeout)

    def set(self) -> None:
        channel = self.channel
        try:
            channel.sendall(f"{time.time():.6f}\n".encode())
            if not channel.status_event.wait(self.timeout) or channel.recv_exit_status() != 0:
                ready = channel.recv_stderr_ready()
                error = channel.recv_stderr(4096).decode(errors="replace").strip() if ready else ""
                raise RunError(f"cannot set the guest's clock after a restore: {error or 'date failed'}")
        finally:
            channel.close()


def set_guest_clock(connection: SshConnection, *, timeout: float = 30.0) -> None:
    """Set the guest's clock to the host's over `connection`."""
    GuestClockSetter.start(connection, timeout=timeout).set()
