"""Boot an image in qemu and reach it over SSH without a network (machine/runner.py's contract).

The argv comes from imagebuild.launch.qemu (firmware, OVMF, Secure Boot, swtpm, KVM or TCG, direct kernel
boot); this runner adds what a test needs: a qcow2 overlay in the machine's state directory (the cached
image is only read; the overlay, firmware variables and TPM state are kept when the machine is started
again after a crash or power-off, and go with the machine), the serial console on a unix socket with
everything recorded to console.log, QMP for the power buttons, and the SSH channel of
imagebuild.launch.guest_ssh: AF_VSOCK where this host has vhost-vsock, else a virtio-serial port.
Readiness is the guest's announcement on a second port (or READY=1 over vsock), then the SSH handshake.
The runner hangs up on its own (release_ssh(), reconnect()) only after a settling round trip: an sshd
caught writing to a virtio-serial port whose host side has gone would block there, never announce its
successor and answer the next connection with the old session's bytes (the "no readiness" flake).

Lifetime: each boot runs under a small supervisor process (runners/qemu_supervisor.py, driven through
runners/qemu_boot.py) that starts swtpm, virtiofsd and qemu, which die with it (PR_SET_PDEATHSIG). It does
not die with the session: it stops qemu when the session ends, however it ends (its stdin is a pipe only the
session holds), unless the session kept the machine (--mkosi-keep-on-failure: machine.state's `kept`
marker). The state directory is machine/state.py's (locked while the session lives; its reaper stops the
supervisor, qemu, swtpm and virtiofsd and removes keys and overlay when the session dies, even by SIGKILL).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shlex
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

from imagebuild.errors import RunError
from imagebuild.launch import guest_ssh
from imagebuild.launch import qemu as launch
from imagebuild.launch.runtime_state import RuntimeState
from imagebuild.launch.ssh_keys import SshKeys, make_keys
from imagebuild.launch.vsock import free_cid, ssh_transport
from pytest_mkosi.machine.runner import Runner
from pytest_mkosi.machine.state import StateDir
from pytest_mkosi.runners.qemu_boot import QemuCrashed, SupervisedBoot
from pytest_mkosi.runners.qemu_snapshots import QemuSnapshots
from pytest_mkosi.runners.qemu_supervisor import Spec
from pytest_mkosi.runners.qmp import Qmp, QmpError
from pytest_mkosi.runners.readiness import ReadyPort
from pytest_mkosi.runners.stall import GuestStalled, StallWatch, set_aside
from pytest_mkosi.transport.ssh import SocketFactory, SshConnection, fresh_sshd_socket, unix_socket
from pytest_mkosi.transport.vsock import notify_listener, vsock_socket

if TYPE_CHECKING:
    from imagebuild.config import Config
    from pytest_mkosi.transport.replay import SessionRecord

log = logging.getLogger("pytest_mkosi")
CONSOLE_TAIL_LINES = 40
# Boots cut because the guest's kernel stalled, per start(), before it gives up.
STALL_RETRIES = 1


class QemuRunner(QemuSnapshots, Runner):
    kind = "qemu"
    # The supervisor process, not this one, runs qemu and its helpers (see the module's doc).
    can_outlive_session = True
    # Generous for TCG, which is all this kind of host has (no usable KVM): examples/disk took 30-180 s to
    # answer over SSH on a loaded 2-core machine. Under KVM a boot ends long before; it is only a limit.
    boot_timeout = 600.0

    def __init__(self, config: Config, image_path: Path, *, name: str, tools_tree: Path | None = None,
                 state_parent: Path | None = None, stop_grace: float = 10.0, network: bool = False,
                 root_disk: Path | None = None, firmware_variables: Path | None = None) -> None:
        """`config` as resolved; `image_path` the built image (the cache's copy), which is never written;
        `name` unique on this host (machine.state.unique_machine_name()); `tools_tree` where qemu, OVMF and
        swtpm come from (None: the host's, e.g. imagebuild.pipeline.subbuilds.tools_tree_for(config));
        `state_parent` the parent of all
        machines' state directories; `stop_grace` how long stop() lets the guest power off cleanly;
        `network` a user-mode NIC (RuntimeNetwork=user's default cannot be told from a choice, so the
        caller decides; a test machine has none by default); `root_disk` an ext4 file system of a directory
        image (pytest_mkosi.root_disks), booted through an overlay instead of virtiofs; `firmware_variables`
        the OVMF variables a machine starts from (pytest_mkosi.enrolled_vars: the image's keys enrolled)."""
        self.config = dataclasses.replace(config, output_directory=image_path.parent)
        launch.check_bootable(self.config)
        artifact = launch.image_path(self.config)
        if image_path != artifact:
            raise RunError(f"{image_path} is not the artifact of {config.output} (expected {artifact.name})")
        self.image_path = artifact
        self.name = name
        self.tools_tree = tools_tree
        self.state_parent = state_parent
        self.stop_grace = stop_grace
        self.network = network
        self.root_disk = root_disk
        self.firmware_variables = firmware_variables
        self.accelerator: str | None = None
        self.accelerator_note = ""
        self.transport = ssh_transport(self.config)
        self.boot_id: str | None = None
        # Seconds from the last start() to its first SSH connection.
        self.boot_seconds: float | None = None
        self._state: StateDir | None = None
        self._boot: SupervisedBoot | None = None
        self._ssh: SshConnection | None = None
        self._ready: ReadyPort | None = None
        self._notify: socket.socket | None = None
        self._qmp: Qmp | None = None
        self._channel: guest_ssh.GuestChannel | None = None
        self._keys: SshKeys | None = None
        # The start of the SSH session saved with each snapshot (snapshot()).
        self._saved_sessions: dict[str, SessionRecord] = {}
        self.restore_fallbacks = 0  # restores whose saved session could not be replayed (a fresh sshd took over)
        self._start_paused = False

    # -- paths ---------------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:  # type: ignore[override]
        if self._state is None:
            raise RunError(f"{self.name} has not been started")
        return self._state.path

    @property
    def console_log_path(self) -> Path:  # type: ignore[override]
        return self.state_dir / "console.log"

    # -- lifecycle -----------------------------------------------------------------------------------

    def _channel_for(self, state: Path, keys: SshKeys) -> guest_ssh.GuestChannel:
        if self.transport == "vsock":
            self._notify = notify_listener()
            return guest_ssh.vsock_channel(free_cid(), keys, notify_port=self._notify.getsockname()[1])
        return guest_ssh.virtio_serial_channel(state, keys)

    def qemu_options(self, state: Path, channel: guest_ssh.GuestChannel) -> launch.QemuOptions:
        console = state / "console.sock"
        return launch.QemuOptions(
            # logfile=: everything the console prints lands in console.log, read or not, across reboots.
            console_args=["-chardev", f"socket,id=console,path={console},server=on,wait=off,"
                          f"logfile={state / 'console.log'},logappend=on", "-serial", "chardev:console"],
            extra_args=[*channel.qemu_args, "-qmp", f"unix:{state / 'qmp.sock'},server=on,wait=off"],
            ephemeral=True, overlay=True, scratch=state,
            # No NIC unless the caller asks for one: SSH needs none.
            network=self.network, root_disk=self.root_disk, firmware_variables=self.firmware_variables,
        )

    def _machine_state(self) -> tuple[StateDir, SshKeys]:
        """The state directory and keys, made at the first start and kept until stop()."""
        if self._state is None or self._keys is None:
            self._state = StateDir.create(self.name, self.state_parent)
            self._keys = make_keys(self._state.path / "ssh")
        return self._state, self._keys

    def start(self, *, timeout: float = boot_timeout) -> None:
        """Boot (again, after a crash or power-off: on the same overlay); return once SSH answers. A boot
        whose guest kernel stalls for good (runners/stall.py) or whose qemu crashes is cut and started again,
        STALL_RETRIES times."""
        if self.is_running():
            return
        started = time.monotonic()
        deadline = started + timeout
        first_boot = self._state is None
        for retry in range(STALL_RETRIES + 1):
            try:
                self._boot_once(started, deadline)
                return
            except (GuestStalled, QemuCrashed) as e:
                if retry == STALL_RETRIES:
                    tail = self._console_tail()
                    self.stop()
                    raise RunError(f"{self.name} did not come up: {e} (booted {retry + 1} times)\n{tail}") from None
                self.stalled_boots += 1
                log.warning("%s: %s; booting it again", self.name, e)
                # A first boot starts again from nothing (a fresh overlay); a restart keeps its overlay, and
                # the cut boot's console goes aside.
                if first_boot:
                    self.stop()
                else:
                    self.power_off_hard()
                    with contextlib.suppress(OSError):
                        set_aside(self.console_log_path, e.since)
            except BaseException as e:
                tail = self._console_tail()
                self.stop()
                if isinstance(e, Exception) and not isinstance(e, RunError):
                    raise RunError(f"{self.name} did not come up: {e}\n{tail}") from None
                raise

    def _boot_once(self, started: float, deadline: float) -> None:
        # What the last boot left (swtpm keeps running after qemu ended, its QMP and readiness sockets).
        self._end_boot()
        state_dir, keys = self._machine_state()
        state = state_dir.path
        watch = StallWatch(state / "console.log")
        self._channel = self._channel_for(state, keys)
        # paused (-S): restore() loads a snapshot into a machine that has not run yet (no boot).
        spec = Spec(self.config, self.tools_tree, self.qemu_options(state, self._channel), state,
                    paused=self._start_paused, ready_socket=self._channel.ready_socket)
        self._boot = SupervisedBoot.start(spec, state_dir, timeout=max(1.0, deadline - time.monotonic()))
        self.accelerator, self.accelerator_note = self._boot.accelerator, self._boot.accelerator_note
        self._qmp = Qmp(state / "qmp.sock")
        try:
            if self._channel.ready_socket is not None:
                self._ready = ReadyPort(self._channel.ready_socket)
                self._ready.connect(deadline=deadline, alive=self.is_running)
            if not self._start_paused:
                self._wait_ready(other_than=None, deadline=deadline, watch=watch)
        except (OSError, RunError) as e:  # qemu gone (a port or socket closed), or the deadline
            self._boot.raise_if_gone(e, since=watch.start)
            raise
        if not self._start_paused:
            self.boot_seconds = time.monotonic() - started

    def _wait_ready(self, *, other_than: str | None, deadline: float, watch: StallWatch | None = None) -> None:
        """The next announcement of a fresh sshd (in a boot other than `other_than`), then the handshake;
        GuestStalled as soon as `watch` sees the guest's kernel stall."""
        check = watch.check if watch is not None else None
        if self._ready is not None:
            self._ready.drain()
            self.boot_id = self._ready.wait_boot(other_than=other_than, deadline=deadline, alive=self.is_running,
                                                 check=check)
        elif self._notify is not None:
            self._wait_notify(deadline, check)
        self._connect(deadline)

    def _wait_notify(self, deadline: float, check: Callable[[], None] | None) -> None:
        assert self._notify is not None
        while True:
            if check is not None:
                check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the guest did not send READY=1")
            self._notify.settimeout(min(remaining, 1.0))
            try:
                connection, _ = self._notify.accept()
                break
            except TimeoutError:
                continue
        with connection:
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            data = b""
            while b"READY=1" not in data:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                data += chunk

    def _check_running(self) -> None:
        if not self.is_running():
            code = None if self._boot is None else self._boot.returncode
            raise RunError(f"qemu of {self.name} exited (status {code})")

    def _socket_factory(self) -> SocketFactory:
        assert self._channel is not None
        if self._channel.kind == "vsock":
            assert self._channel.cid is not None and self._channel.ssh_port is not None
            return vsock_socket(self._channel.cid, self._channel.ssh_port)
        assert self._channel.ssh_socket is not None
        return unix_socket(self._channel.ssh_socket, check=self._check_running)

    def _connect(self, deadline: float) -> None:
        assert self._keys is not None
        factory = self._socket_factory()
        if self.transport == "virtio-serial":
            factory = fresh_sshd_socket(factory, deadline=deadline)  # never the rest of an old session
        self._ssh = SshConnection.to_machine(factory, self._keys, timeout=max(1.0, deadline - time.monotonic()))

    def _close_ssh(self) -> None:
        if self._ssh is not None:
            with contextlib.suppress(Exception):
                self._ssh.close()
            self._ssh = None

    def _hang_up(self, *, settle: bool = True) -> None:
        """Close the runner's connection on purpose (the boot goes on): settled first (SshConnection.settle
        says why) when the stream is a virtio-serial port (unless it is known to have stopped moving)."""
        if settle and self._ssh is not None and self.transport == "virtio-serial" and self._ssh.is_active():
            self._ssh.settle()
        self._close_ssh()

    def stop(self) -> None:
        self._close_ssh()
        if self._boot is not None and self._boot.is_running():
            if self.stop_grace > 0 and self._qmp is not None:
                with contextlib.suppress(QmpError):
                    self._qmp.command("system_powerdown")
                self._boot.wait(self.stop_grace)
            self._kill_qemu()
        self._end_boot()
        if self._state is not None:
            self._state.remove()
            self._state = None

    def _end_boot(self) -> None:
        """Close what belongs to one qemu process, which has exited."""
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        for channel in (self._ready, self._notify):
            if channel is not None:
                channel.close()
        self._ready = self._notify = None
        # The supervisor stops swtpm (it does not exit by itself) and removes QemuDrives= files, then exits.
        if self._boot is not None:
            self._boot.close()
            self._boot = None

    def _kill_qemu(self) -> None:
        if self._boot is None or not self._boot.is_running():
            return
        if self._qmp is not None:
            self._qmp.quit()
        if not self._boot.wait(5):
            self._boot.kill()

    # -- the contract ---------------------------------------------------------------------------------

    def connection(self) -> SshConnection:
        if self._ssh is None:
            raise ConnectionError(f"{self.name} is not reachable over SSH")
        return self._ssh

    @property
    def ssh(self) -> paramiko.SSHClient:
        return self.connection().client

    def release_ssh(self, *, timeout: float = 120.0) -> None:
        """Close the runner's SSH connection and return once a fresh sshd waits on the port (it carries
        one stream: someone else can use it now, e.g. ssh_command()); connection() fails until reconnect()."""
        # Forget old announcements before the hang-up: the next sshd may announce itself before a drain
        # after it, and that announcement would be lost (a 120 s wait for one that already came).
        if self._ready is not None:
            self._ready.drain()
        self._hang_up()
        if self._ready is not None:
            self._ready.wait_boot(other_than=None, deadline=time.monotonic() + timeout, alive=self.is_running)

    def reconnect(self, *, timeout: float = 120.0, settle: bool = True) -> None:
        """A new SSH connection to the running boot (after release_ssh(), or when the stream stopped moving:
        `settle` False), through a fresh sshd."""
        had_connection = self._ssh is not None
        if self._ready is not None:
            self._ready.drain()  # before the hang-up, as in release_ssh()
        self._hang_up(settle=settle)
        deadline = time.monotonic() + timeout
        if self._ready is not None and had_connection:
            self._ready.wait_boot(other_than=None, deadline=deadline, alive=self.is_running)
        self._connect(deadline)

    def wait_rebooted(self, *, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        # The stream of the old boot is dead; its sshd is gone.
        self._close_ssh()
        try:
            self._wait_ready(other_than=self.boot_id, deadline=deadline, watch=StallWatch(self.console_log_path))
        except (TimeoutError, ConnectionError, OSError, GuestStalled) as e:
            raise RunError(f"{self.name} did not come back after the reboot: {e}\n{self._console_tail()}") from None

    def reset(self) -> None:
        """Press the reset button (QMP system_reset); then wait_rebooted()."""
        assert self._qmp is not None
        self._qmp.command("system_reset")

    def power_off_hard(self) -> None:
        self._close_ssh()
        self._kill_qemu()
        self._end_boot()

    def is_running(self) -> bool:
        return self._boot is not None and self._boot.is_running()

    def send_console(self, text: str, *, timeout: float = 30.0) -> None:
        """Type on the serial console. Connected only while typing: qemu would stall the guest's serial port
        on a reader that never reads. qemu passes the bytes on only as fast as the guest's UART takes them
        and drops what is left when the typist hangs up: so say "that is all" (SHUT_WR) and stay until qemu
        has read up to it and hangs up itself, reading (and dropping: console.log has it) what it echoes."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.state_dir / "console.sock"))
            sock.sendall(text.encode())
            sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(TimeoutError, OSError):
                while sock.recv(65536):
                    pass

    def ssh_command(self) -> str:
        """OpenSSH through imagebuild.launch.relay. Over virtio-serial the port carries one stream, so this
        gets through only while the runner itself is not connected (vsock has no such limit)."""
        assert self._keys is not None and self._channel is not None
        return shlex.join(guest_ssh.ssh_argv(key=self._keys.client_key, known_hosts=self._keys.known_hosts,
                                             proxy=guest_ssh.relay_argv(self._channel)))

    def runtime_record(self) -> RuntimeState | None:
        if self._boot is None or self._keys is None or self._channel is None:
            return None
        channel = self._channel
        return RuntimeState(pid=self._boot.process.pid, transport=channel.kind, key=str(self._keys.client_key),
                            known_hosts=str(self._keys.known_hosts), host_key_alias=guest_ssh.HOST_KEY_ALIAS,
                            ssh_socket=str(channel.ssh_socket) if channel.ssh_socket else None, cid=channel.cid,
                            port=channel.ssh_port)

    def let_go(self) -> None:
        if self.is_running():
            self.release_ssh()

    def _console_tail(self) -> str:
        with contextlib.suppress(OSError, RunError):
            lines = self.console_log_path.read_text(errors="replace").splitlines()[-CONSOLE_TAIL_LINES:]
            return "console:\n" + "\n".join(f"    {line}" for line in lines)
        return ""
