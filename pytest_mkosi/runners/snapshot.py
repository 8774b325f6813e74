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
from imagebuild.launch.serial_sshd import PrefixedSocket, open_fresh_sshd
from pytest_mkosi.runners.qmp import Qmp, QmpError
from pytest_mkosi.transport.ssh import SshConnection

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

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


# -- a snapshot with sshd waiting: restore meets an sshd that has started and sent its KEXINIT -------------
#
# Over virtio-serial the guest's `sshd -i` reads the port: with no host connected it reads EOF and exits, and
# systemd starts the next one after a pause, so a machine saved while the host is away is saved between two
# sshds, and every restore pays for an sshd start under TCG (seconds). Instead the host connects to the port
# before the save, reads the waiting sshd's banner, sends paramiko's and reads the sshd's KEXINIT: OpenSSH
# (10+) starts its pre-authentication process (sshd-auth, an exec: about a second under TCG) between the two,
# so the snapshot holds an sshd past that, waiting for the client's KEXINIT, and the port's "host connected"
# state. A restore loads it while a new host connection is up (qemu then tells the guest nothing: connected
# before, connected now), hands paramiko what the sshd said and swallows paramiko's banner, already said.

SSH_MSG_KEXINIT = 20
LONGEST_PACKET = 35000  # RFC 4253 6.1: what every implementation must take


def client_banner() -> bytes:
    """The identification line paramiko sends first (the saved sshd has had it: every restore checks it)."""
    transport = paramiko.Transport
    return f"SSH-{getattr(transport, '_PROTO_ID', '2.0')}-{getattr(transport, '_CLIENT_ID', '')}\r\n".encode()


@dataclass(frozen=True)
class SavedHandshake:
    """The start of the SSH handshake saved with a machine: what its sshd said (the banner, then its
    KEXINIT packet) and the client banner it got."""

    server_said: bytes
    client_said: bytes


class ReplayedSocket(PrefixedSocket):
    """A connection to a saved sshd: the first reads return what it said before the save, and the first
    bytes sent, which it heard before the save, are checked and swallowed."""

    def __init__(self, sock: socket.socket, handshake: SavedHandshake) -> None:
        super().__init__(sock, handshake.server_said)
        self._said = handshake.client_said

    def _swallowed(self, data: bytes) -> int:
        count = min(len(data), len(self._said))
        if bytes(data[:count]) != self._said[:count]:
            # paramiko turns this into an EOFError; the restore then falls back to a fresh sshd.
            raise ConnectionError(f"the client's identification {bytes(data[:count])!r} is not the "
                                  f"{self._said!r} the saved sshd got")
        self._said = self._said[count:]
        return count

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        if self._said:
            return self._swallowed(bytes(data))
        return super().send(data, flags)

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        data = bytes(data)
        while self._said and data:
            data = data[self._swallowed(data):]
        if data:
            super().sendall(data, flags)


def one_connection(sock: socket.socket, handshake: SavedHandshake) -> Callable[[], socket.socket]:
    """A socket factory for SshConnection that hands out `sock` (ReplayedSocket) once: a failed handshake
    cannot be retried on the same sshd."""
    handed: list[socket.socket] = []

    def connect() -> socket.socket:
        if handed:
            raise RunError("the SSH handshake with the sshd saved in the snapshot failed")
        handed.append(ReplayedSocket(sock, handshake))
        return handed[0]

    return connect


def read_kexinit(sock: socket.socket, deadline: float) -> bytes:
    """The server's first binary packet, which must be its KEXINIT (RFC 4253 7.1: sent unencrypted right
    after the identification lines), as it came."""
    data = b""
    wanted = 4
    while len(data) < wanted:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
            raise SnapshotError(f"the sshd to be saved with the machine sent no KEXINIT ({len(data)} bytes came)")
        chunk = sock.recv(wanted - len(data))
        if not chunk:
            raise SnapshotError("the sshd to be saved with the machine hung up before its KEXINIT")
        data += chunk
        if len(data) == 4:
            length = int.from_bytes(data, "big")
            if not 6 <= length <= LONGEST_PACKET:
                raise SnapshotError(f"the sshd to be saved with the machine sent no packet (length {length})")
            wanted = 4 + length
    if data[5] != SSH_MSG_KEXINIT:
        raise SnapshotError(f"the sshd to be saved with the machine sent message {data[5]}, not its KEXINIT")
    return data


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


def save_with_sshd_waiting(port: SshPort, tag: str, *, deadline: float
                           ) -> tuple[float, socket.socket, SavedHandshake]:
    """Connect to the SSH port (no one else may be connected), take the handshake of the fresh sshd that
    answers (serial_sshd: never an old session's bytes, which every restore would replay) up to its KEXINIT
    and save the machine as `tag`. Returns the seconds the save took, the connected socket (the guest's sshd
    waits for the client's KEXINIT on it) and the handshake so far, which every restore replays."""
    try:
        sock, banner = open_fresh_sshd(port.connect, deadline=deadline)
    except TimeoutError as e:
        raise SnapshotError(f"no sshd answered on the SSH port to be saved with the machine: {e}") from None
    try:
        said = client_banner()
        sock.sendall(said)
        handshake = SavedHandshake(banner + read_kexinit(sock, deadline), said)
        seconds = VmSnapshots(port.qmp).save(tag)
    except BaseException:
        sock.close()
        raise
    return seconds, sock, handshake


def load_with_sshd_waiting(port: SshPort, tag: str, close_current: Callable[[], None], *, deadline: float
                           ) -> socket.socket:
    """Load `tag` (saved by save_with_sshd_waiting) and return a socket to the sshd saved with it. The guest
    is paused from before the new connection on, so that the machine of before the load writes nothing into
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


def set_guest_clock(connection: SshConnection, *, timeout: float = 30.0) -> None:
    """Set the guest's clock to the host's (after a load it shows the time of the save). The time is sent
    once the guest's shell waits for it: a TCG guest takes a while to start a command, which would leave
    a time sent with the command behind by as much."""
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
                break
            said += chunk
        channel.sendall(f"{time.time():.6f}\n".encode())
        if not channel.status_event.wait(timeout) or channel.recv_exit_status() != 0:
            error = channel.recv_stderr(4096).decode(errors="replace").strip() if channel.recv_stderr_ready() else ""
            raise RunError(f"cannot set the guest's clock after a restore: {error or 'date failed'}")
    finally:
        channel.close()
