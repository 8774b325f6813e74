"""Boot an image in qemu and reach it over SSH without a network (machine/runner.py's contract).

The argv comes from imagebuild.launch.qemu (firmware, OVMF, Secure Boot, swtpm, KVM or TCG, direct kernel
boot); this runner adds what a test needs: a qcow2 overlay in the machine's state directory (the cached
image is only read; the overlay, firmware variables and TPM state are kept when the machine is started
again after a crash or power-off, and go with the machine), the serial console on a unix socket with
everything recorded to console.log, QMP for the power buttons, and the SSH channel of
imagebuild.launch.guest_ssh: AF_VSOCK where this host has vhost-vsock, else a virtio-serial port.
Readiness is the guest's announcement on a second port (or READY=1 over vsock), then the SSH handshake.

Lifetime: the state directory is machine/state.py's (locked while the session lives; its reaper stops
qemu and swtpm and removes keys and overlay when the session dies, even by SIGKILL); qemu and swtpm also
get PR_SET_PDEATHSIG.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config import ConfigFeature
from imagebuild.errors import RunError
from imagebuild.launch import guest_ssh
from imagebuild.launch import qemu as launch
from imagebuild.launch.lifetime import die_with_parent
from imagebuild.launch.ssh_keys import SshKeys, make_keys
from imagebuild.launch.vsock import free_cid, vhost_vsock_available
from pytest_mkosi.machine.runner import Runner
from pytest_mkosi.machine.state import StateDir
from pytest_mkosi.runners.qmp import Qmp, QmpError
from pytest_mkosi.runners.readiness import ReadyPort
from pytest_mkosi.transport.ssh import SocketFactory, SshConnection, unix_socket
from pytest_mkosi.transport.vsock import notify_listener, vsock_socket

if TYPE_CHECKING:
    import paramiko

    from imagebuild.config import Config

CONSOLE_TAIL_LINES = 40


def choose_transport(config: Config) -> str:
    """QemuVsock=: vsock when asked for or (auto) when /dev/vhost-vsock exists; else virtio-serial."""
    if config.qemu_vsock == ConfigFeature.enabled:
        if not vhost_vsock_available():
            raise RunError("QemuVsock=yes: this host has no /dev/vhost-vsock (modprobe vhost_vsock); "
                           "set QemuVsock=auto to use virtio-serial instead")
        return "vsock"
    if config.qemu_vsock == ConfigFeature.auto and vhost_vsock_available():
        return "vsock"
    return "virtio-serial"


class QemuRunner(Runner):
    kind = "qemu"
    # Generous for TCG, which is all this kind of host has (no usable KVM): examples/disk took 30-180 s to
    # answer over SSH on a loaded 2-core machine. Under KVM a boot ends long before; it is only a limit.
    boot_timeout = 600.0

    def __init__(self, config: Config, image_path: Path, *, name: str, tools_tree: Path | None = None,
                 state_parent: Path | None = None, stop_grace: float = 10.0, network: bool = False) -> None:
        """`config` as resolved; `image_path` the built image (the cache's copy), which is never written;
        `name` unique on this host (machine.state.unique_machine_name()); `tools_tree` where qemu, OVMF and
        swtpm come from (None: the host's, e.g. imagebuild.pipeline.subbuilds.tools_tree_for(config));
        `state_parent` the parent of all
        machines' state directories; `stop_grace` how long stop() lets the guest power off cleanly;
        `network` a user-mode NIC (RuntimeNetwork=user's default cannot be told from a choice, so the
        caller decides; a test machine has none by default)."""
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
        self.accelerator: str | None = None
        self.accelerator_note = ""
        self.transport = choose_transport(self.config)
        self.boot_id: str | None = None
        # Seconds from the last start() to its first SSH connection.
        self.boot_seconds: float | None = None
        self._state: StateDir | None = None
        self._stack = contextlib.ExitStack()
        self._process: subprocess.Popen[bytes] | None = None
        self._ssh: SshConnection | None = None
        self._ready: ReadyPort | None = None
        self._notify: socket.socket | None = None
        self._qmp: Qmp | None = None
        self._channel: guest_ssh.GuestChannel | None = None
        self._keys: SshKeys | None = None

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
            network=self.network,
        )

    def _machine_state(self) -> tuple[StateDir, SshKeys]:
        """The state directory and keys, made at the first start and kept until stop()."""
        if self._state is None or self._keys is None:
            self._state = StateDir.create(self.name, self.state_parent)
            self._keys = make_keys(self._state.path / "ssh")
        return self._state, self._keys

    def start(self, *, timeout: float = boot_timeout) -> None:
        """Boot (again, after a crash or power-off: on the same overlay); return once SSH answers."""
        if self.is_running():
            return
        started = time.monotonic()
        deadline = started + timeout
        # What the last boot left (swtpm keeps running after qemu ended, its QMP and readiness sockets).
        self._end_boot()
        state_dir, keys = self._machine_state()
        state = state_dir.path
        try:
            self._channel = self._channel_for(state, keys)
            vm = self._stack.enter_context(launch.qemu_machine(
                self.config, tools_tree=self.tools_tree, options=self.qemu_options(state, self._channel)))
            self.accelerator, self.accelerator_note = vm.accelerator, vm.accelerator_note
            if vm.swtpm is not None and vm.swtpm.process is not None:
                state_dir.record_process(vm.swtpm.process.pid)
            (state / "qemu.argv").write_text(shlex.join(vm.argv) + "\n")
            with open(state / "qemu.log", "wb") as log:
                self._process = subprocess.Popen(vm.argv, stdin=subprocess.DEVNULL, stdout=log,
                                                 stderr=subprocess.STDOUT, start_new_session=True,
                                                 preexec_fn=die_with_parent)
            state_dir.record_process(self._process.pid)
            self._qmp = Qmp(state / "qmp.sock")
            if self._channel.ready_socket is not None:
                self._ready = ReadyPort(self._channel.ready_socket)
                self._ready.connect(deadline=deadline, alive=self.is_running)
            self._wait_ready(other_than=None, deadline=deadline)
            self.boot_seconds = time.monotonic() - started
        except BaseException as e:
            tail = self._console_tail()
            self.stop()
            if isinstance(e, Exception) and not isinstance(e, RunError):
                raise RunError(f"{self.name} did not come up: {e}\n{tail}") from None
            raise

    def _wait_ready(self, *, other_than: str | None, deadline: float) -> None:
        """The next announcement of a fresh sshd (in a boot other than `other_than`), then the handshake."""
        if self._ready is not None:
            self._ready.drain()
            self.boot_id = self._ready.wait_boot(other_than=other_than, deadline=deadline, alive=self.is_running)
        elif self._notify is not None:
            self._wait_notify(deadline)
        self._connect(deadline)

    def _wait_notify(self, deadline: float) -> None:
        assert self._notify is not None
        self._notify.settimeout(max(0.1, deadline - time.monotonic()))
        connection, _ = self._notify.accept()
        with connection:
            data = b""
            while b"READY=1" not in data:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                data += chunk

    def _check_running(self) -> None:
        if not self.is_running():
            code = None if self._process is None else self._process.returncode
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
        self._ssh = SshConnection.to_machine(self._socket_factory(), self._keys,
                                             timeout=max(1.0, deadline - time.monotonic()))

    def _close_ssh(self) -> None:
        if self._ssh is not None:
            with contextlib.suppress(Exception):
                self._ssh.close()
            self._ssh = None

    def stop(self) -> None:
        self._close_ssh()
        if self._process is not None and self._process.poll() is None:
            if self.stop_grace > 0 and self._qmp is not None:
                with contextlib.suppress(QmpError):
                    self._qmp.command("system_powerdown")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(self.stop_grace)
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
        # swtpm (it does not exit by itself), QemuDrives= files.
        self._stack.close()

    def _kill_qemu(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        if self._qmp is not None:
            self._qmp.quit()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, 9)
            self._process.wait()

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
        self._close_ssh()
        if self._ready is not None:
            self._ready.drain()
            self._ready.wait_boot(other_than=None, deadline=time.monotonic() + timeout, alive=self.is_running)

    def reconnect(self, *, timeout: float = 120.0) -> None:
        """A new SSH connection to the running boot (after release_ssh()), through a fresh sshd."""
        self._close_ssh()
        deadline = time.monotonic() + timeout
        if self._ready is not None:
            self._ready.drain()
            self._ready.wait_boot(other_than=None, deadline=deadline, alive=self.is_running)
        self._connect(deadline)

    def wait_rebooted(self, *, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        # The stream of the old boot is dead; its sshd is gone.
        self._close_ssh()
        try:
            self._wait_ready(other_than=self.boot_id, deadline=deadline)
        except (TimeoutError, ConnectionError, OSError) as e:
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
        return self._process is not None and self._process.poll() is None

    def send_console(self, text: str) -> None:
        # Connected only while typing: qemu would stall the guest's serial port on a reader that never reads.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.state_dir / "console.sock"))
            sock.sendall(text.encode())

    def ssh_command(self) -> str:
        """OpenSSH through imagebuild.launch.relay. Over virtio-serial the port carries one stream, so this
        gets through only while the runner itself is not connected (vsock has no such limit)."""
        assert self._keys is not None and self._channel is not None
        return shlex.join(guest_ssh.ssh_argv(key=self._keys.client_key, known_hosts=self._keys.known_hosts,
                                             proxy=guest_ssh.relay_argv(self._channel)))

    def _console_tail(self) -> str:
        with contextlib.suppress(OSError, RunError):
            lines = self.console_log_path.read_text(errors="replace").splitlines()[-CONSOLE_TAIL_LINES:]
            return "console:\n" + "\n".join(f"    {line}" for line in lines)
        return ""
