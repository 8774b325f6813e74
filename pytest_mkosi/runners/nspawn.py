"""Boot a directory image with systemd-nspawn and reach it over SSH on an AF_UNIX socket.

Nothing of the image is changed: the tree is mounted with a tmpfs overlay, so many machines can boot the
same cached image at once. Two host directories are bound in: one becomes /run/systemd/system and holds the
socket unit of transport/guest_units.py that starts `sshd -i` for every connection on
/run/pytest-mkosi/ssh.sock; the other holds that socket and the session's authorized key. No network and no
TCP port is involved.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

if TYPE_CHECKING:
    from imagebuild.config import Config
from imagebuild.errors import RunError
from imagebuild.launch.nspawn import NspawnOptions, machine_name, nspawn_command
from pytest_mkosi.machine.api import CommandResult, Machine, as_command
from pytest_mkosi.transport.guest_units import GUEST_DIR, write_unix_socket_units
from pytest_mkosi.transport.keys import make_keypair
from pytest_mkosi.transport.ssh import SocketFactory, SshConnection, unix_socket

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If the test process dies without stopping us (SIGKILL), nspawn gets SIGTERM and powers off.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _image_host_key(tree: Path) -> paramiko.PKey | None:
    public = tree / "etc/ssh/ssh_host_ed25519_key.pub"
    try:
        kind, data = public.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    try:
        return paramiko.PKey.from_type_string(kind, base64.b64decode(data))
    except (ValueError, paramiko.SSHException):
        return None


class NspawnMachine(Machine):
    """A booted container. Use as a context manager, or call start() and stop()."""

    def __init__(self, config: Config, tree: Path, *, name: str | None = None, state_dir: Path | None = None) -> None:
        self.config = config
        self.tree = tree
        self.name = name or machine_name(config)
        self._own_state_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix=f"pytest-mkosi-{self.name}-"))
        self.console_log = self.state_dir / "console.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._ssh: SshConnection | None = None
        self.boot_seconds: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def _prepare(self) -> tuple[Path, Path, Path, str]:
        units = self.state_dir / "units"
        share = self.state_dir / "share"
        share.mkdir(parents=True, exist_ok=True)
        socket_unit = write_unix_socket_units(units)
        key, public = make_keypair(self.state_dir)
        (share / "authorized_keys").write_text(public)
        return units, share, key, socket_unit

    def start(self, *, timeout: float = 60.0) -> NspawnMachine:
        if not (self.tree / "usr/sbin/sshd").exists():
            raise RunError(
                f"{self.tree} has no /usr/sbin/sshd: add openssh-server to Packages= to reach the machine over SSH"
            )
        units, share, key, socket_unit = self._prepare()
        options = NspawnOptions(
            boot=True,
            machine=self.name,
            volatile_overlay=True,
            console="pipe",
            binds=[(units, "/run/systemd/system"), (share, GUEST_DIR)],
        )
        # Arguments after the tree go to the guest's systemd as its command line.
        argv = nspawn_command(self.config, self.tree, options,
                              [f"systemd.wants={socket_unit}", "systemd.show_status=yes"])
        started = time.monotonic()
        with self.console_log.open("wb") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        try:
            self._ssh = SshConnection.connect(
                self._socket_factory(share / "ssh.sock"),
                key_file=key,
                host_key=_image_host_key(self.tree),
                hostname=self.name,
                timeout=timeout,
            )
        except BaseException as e:
            self.stop()
            if isinstance(e, Exception):
                raise RunError(f"{self.name} did not answer over SSH: {e}\n{self._console_tail()}") from None
            raise
        self.boot_seconds = time.monotonic() - started
        return self

    def _socket_factory(self, path: Path) -> SocketFactory:
        connect = unix_socket(path)

        def factory() -> socket.socket:
            if self.process is not None and self.process.poll() is not None:
                raise RunError(f"systemd-nspawn exited with status {self.process.returncode}\n{self._console_tail()}")
            return connect()

        return factory

    def _console_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = self.console_log.read_text(errors="replace").splitlines()[-lines:]
            return "console:\n" + "\n".join(f"    {line}" for line in text)
        return ""

    def stop(self, *, timeout: float = 20.0) -> None:
        """Power the container off (SIGTERM makes nspawn ask init to halt), then kill what is left."""
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> NspawnMachine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- access --------------------------------------------------------------------------------------

    @property
    def ssh(self) -> paramiko.SSHClient:
        """The connected paramiko client."""
        if self._ssh is None:
            raise RunError(f"{self.name} is not running")
        return self._ssh.client

    def run(self, cmd: str | list[str], *, timeout: float | None = None) -> CommandResult:
        if self._ssh is None:
            raise RunError(f"{self.name} is not running")
        return self._ssh.run(as_command(cmd), timeout=timeout)
