"""Boot a directory image with systemd-nspawn and reach it over SSH on an AF_UNIX socket.

Isolation: the container has a network namespace of its own (a veth link only when asked), so nothing in
it listens on the host. The image is never written: an overlay whose upper directory lives in the machine's
state directory takes every change, so changes survive the guest's reboots (a reboot ends systemd-nspawn
with status 133; the supervisor thread starts it again on the same overlay) and vanish with the machine.

Reaching it: imagebuild.launch.nspawn_ssh binds two host directories in, with a socket unit that starts
`sshd -i` for every connection on an AF_UNIX socket the host connects to, and the keys made for this
machine (the same access `imagebuild boot` gives `imagebuild ssh`). The console is a pty whose output is recorded
to console.log in the state directory.

Lifetime: systemd-nspawn gets SIGTERM when the thread that started it dies (PDEATHSIG, set by setpriv
before exec, since a Python preexec_fn is unsafe in a threaded process), and the state directory's reaper
(machine/state.py) stops it and removes keys and overlay if the session is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from imagebuild.errors import RunError
from imagebuild.launch.nspawn import NspawnOptions, nspawn_command
from imagebuild.launch.nspawn_ssh import prepare_unix_ssh
from imagebuild.launch.relay import relay_command
from imagebuild.launch.ssh_keys import ssh_argv
from pytest_mkosi.machine.console import readable
from pytest_mkosi.machine.runner import Runner
from pytest_mkosi.machine.state import StateDir, kill_tree
from pytest_mkosi.transport.ssh import SshConnection, unix_socket

if TYPE_CHECKING:
    from imagebuild.config import Config

# systemd-nspawn's exit status when the container's init asked for a reboot.
REBOOT_STATUS = 133
CONSOLE_SIZE = struct.pack("HHHH", 50, 160, 0, 0)


def check_bootable(config: Config, tree: Path) -> None:
    """What nspawn needs of an image, checked before anything starts."""
    if str(config.format) != "directory":
        raise RunError(f"the nspawn runner boots Format=directory images, not Format={config.format}: use "
                       "--mkosi-runner=qemu (or auto) for disk images")
    if not (tree / "usr/sbin/sshd").exists():
        raise RunError(f"{tree} has no /usr/sbin/sshd: add openssh-server to Packages= to reach the machine "
                       "over SSH")


class NspawnRunner(Runner):
    kind = "nspawn"
    accelerator = None

    def __init__(self, config: Config, image: Path, *, name: str, veth: bool = False,
                 state_parent: Path | None = None, reconnect_timeout: float = 120.0) -> None:
        check_bootable(config, image)
        self.config = config
        self.tree = image
        self.name = name
        self.veth = veth
        self.reconnect_timeout = reconnect_timeout
        self._state: StateDir | None = StateDir.create(name, state_parent)
        self.state_dir = self._state.path
        self.console_log_path = self.state_dir / "console.log"
        self.boot_seconds: float | None = None
        self._upper = self.state_dir / "overlay"
        self._upper.mkdir()
        self._access = prepare_unix_ssh(self.state_dir)
        self.key_path = self._access.keys.client_key
        # Written by the supervisor thread, read by the others.
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._console_fd = -1
        self._generation = 0  # how many times systemd-nspawn was started
        self._returncode: int | None = None
        self._spawn_error: BaseException | None = None
        self._changed = threading.Condition(self._lock)
        self._exited = threading.Event()
        self._exited.set()
        self._stopping = False
        self._supervisor: threading.Thread | None = None
        # The connection, and the generation of the boot it reached.
        self._connect_lock = threading.Lock()
        self._ssh: SshConnection | None = None
        self._ssh_generation = 0

    # -- the process ---------------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        options = NspawnOptions(
            boot=True,
            machine=self.name,
            overlay_upper=self._upper,
            private_network=True,
            network_veth=self.veth,
            console="interactive",
            binds=self._access.binds,
        )
        # Arguments after the tree go to the guest's systemd as its command line.
        argv = nspawn_command(self.config, self.tree, options,
                              [*self._access.init_args, "systemd.show_status=yes"])
        setpriv = shutil.which("setpriv")
        return [setpriv, "--pdeathsig=TERM", "--", *argv] if setpriv else argv

    def _spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        with contextlib.suppress(FileNotFoundError):
            self._access.socket.unlink()  # the last boot's; the new boot binds it again
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, CONSOLE_SIZE)
        env = {**os.environ, "TERM": os.environ.get("TERM", "vt220")}
        try:
            process = subprocess.Popen(self._argv(), stdin=slave, stdout=slave, stderr=slave,
                                       start_new_session=True, env=env)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return process, master

    def _supervise(self) -> None:
        """Start systemd-nspawn, record its console, start it again when the guest rebooted.

        This thread forks every systemd-nspawn and lives until the last one exited: PDEATHSIG follows the
        thread that forked, not the process."""
        try:
            with self.console_log_path.open("ab") as log:
                while True:
                    process, master = self._spawn()
                    with self._changed:
                        self._process, self._console_fd = process, master
                        self._generation += 1
                        self._changed.notify_all()
                    if self._state is not None:
                        self._state.record_process(process.pid)
                    _record_console(master, log)
                    returncode = process.wait()
                    with self._changed:
                        self._console_fd = -1
                        self._returncode = returncode
                    os.close(master)
                    if returncode != REBOOT_STATUS or self._stopping:
                        break
        except BaseException as e:  # surfaced by start()
            self._spawn_error = e
        finally:
            with self._changed:
                self._exited.set()
                self._changed.notify_all()

    def is_running(self) -> bool:
        return not self._exited.is_set()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, *, timeout: float = 60.0) -> None:
        if self.is_running():
            return
        if self._state is None:
            raise RunError(f"{self.name} was stopped and its state removed; make a new machine")
        started = time.monotonic()
        self._stopping = False
        self._spawn_error = None
        with self._changed:
            generation = self._generation
            self._exited.clear()
            self._supervisor = threading.Thread(target=self._supervise, name=f"nspawn {self.name}", daemon=True)
            self._supervisor.start()
            self._changed.wait_for(lambda: self._generation > generation or self._exited.is_set(), timeout)
        if self._spawn_error is not None:
            raise RunError(f"cannot start systemd-nspawn for {self.name}: {self._spawn_error}")
        try:
            with self._connect_lock:
                self._connect(max(1.0, timeout - (time.monotonic() - started)))
        except Exception as e:
            self._kill()
            raise RunError(f"{self.name} did not answer over SSH: {e}\n{self._console_tail()}") from None
        self.boot_seconds = time.monotonic() - started

    def stop(self, *, timeout: float = 10.0) -> None:
        """Power the container off (SIGTERM makes nspawn ask init to halt), kill what is left, remove state."""
        self._stopping = True
        self._close_ssh()
        with self._lock:
            process = self._process if self.is_running() else None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            if not self._exited.wait(timeout):
                self._kill()
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        if self._state is not None:
            self._state.remove()
            self._state = None

    def power_off_hard(self) -> None:
        self._kill()

    def _kill(self) -> None:
        """SIGKILL systemd-nspawn and the container's init: the pid namespace, and all in it, is gone."""
        self._stopping = True
        self._close_ssh()
        with self._lock:
            process = self._process if self.is_running() else None
        if process is not None:
            kill_tree(process.pid)
            self._exited.wait(10)

    def _close_ssh(self) -> None:
        with self._connect_lock:
            if self._ssh is not None:
                self._ssh.close()
                self._ssh = None

    # -- reaching it ---------------------------------------------------------------------------------

    def _connect(self, timeout: float) -> None:
        generation = self._generation

        def check() -> None:
            if self._exited.is_set():
                raise RunError(f"systemd-nspawn exited with status {self._returncode}")

        ssh = SshConnection.to_machine(unix_socket(self._access.socket, check=check), self._access.keys,
                                       timeout=timeout)
        self._ssh, self._ssh_generation = ssh, generation

    def connection(self) -> SshConnection:
        with self._connect_lock:
            if self._ssh is not None and self._ssh.is_active():
                return self._ssh
            if not self.is_running():
                raise ConnectionError(f"{self.name} is not running")
            try:
                self._connect(self.reconnect_timeout)
            except (RunError, TimeoutError) as e:
                raise ConnectionError(f"{self.name} does not answer over SSH: {e}") from None
            return self._ssh  # type: ignore[return-value]  # set by _connect

    def wait_rebooted(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            self._changed.wait_for(lambda: self._generation > self._ssh_generation or self._exited.is_set(),
                                   timeout)
            if self._exited.is_set():
                raise RunError(f"{self.name} powered off (status {self._returncode}) instead of rebooting")
            if self._generation <= self._ssh_generation:
                raise RunError(f"{self.name} did not reboot within {timeout:g}s\n{self._console_tail()}")
        self._close_ssh()
        with self._connect_lock:
            try:
                self._connect(max(1.0, deadline - time.monotonic()))
            except (RunError, TimeoutError) as e:
                raise RunError(f"{self.name} did not answer after rebooting: {e}\n{self._console_tail()}") from None

    def send_console(self, text: str) -> None:
        with self._lock:
            if self._console_fd < 0:
                raise ConnectionError(f"{self.name} is not running")
            os.write(self._console_fd, text.encode())

    def ssh_command(self) -> str:
        keys = self._access.keys
        return shlex.join(ssh_argv(key=keys.client_key, known_hosts=keys.known_hosts,
                                   proxy=relay_command("unix", str(self._access.socket))))

    def _console_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = readable(self.console_log_path.read_text(errors="replace")).splitlines()[-lines:]
            return "console:\n" + "\n".join(f"    {line}" for line in text)
        return ""


def _record_console(master: int, log: BinaryIO) -> None:
    """Copy the console to the log until systemd-nspawn closes it (EIO)."""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        log.write(data)
        log.flush()
