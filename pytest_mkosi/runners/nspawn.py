"""Boot a directory image with systemd-nspawn and reach it over SSH on an AF_UNIX socket.

Isolation: the container has a network namespace of its own (a veth link only when asked), so nothing in
it listens on the host. The image is never written: an overlay whose upper directory lives in the machine's
state directory takes every change, so changes survive the guest's reboots (a reboot ends systemd-nspawn
with status 133; the supervisor thread starts it again on the same overlay) and vanish with the machine.

Reaching it: imagebuild.launch.nspawn_ssh binds two host directories in, with a socket unit that starts
`sshd -i` for every connection on an AF_UNIX socket the host connects to, and the keys made for this
machine (the same access `imagebuild boot` gives `imagebuild ssh`). The console is a pty whose output is recorded
to console.log in the state directory; typing goes through console.sock there.

Lifetime: systemd-nspawn runs under a small supervisor process (runners/nspawn_supervisor.py) that holds the
console, starts nspawn again after a reboot and stops it when the session ends, however it ends (its stdin is
a pipe only the session holds), unless the session kept the machine (--mkosi-keep-on-failure: machine.state's
`kept` marker); nspawn gets SIGTERM if the supervisor dies (PDEATHSIG). The state directory's reaper
(machine/state.py) also stops them and removes keys, overlay and cgroup if the session is killed. Each
container gets a cgroup of its own (imagebuild.launch.nspawn_cgroup): without one, concurrent containers on a
host without systemd share their unit cgroups and break each other's units.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import RunError
from imagebuild.launch.nspawn import NspawnOptions, nspawn_command
from imagebuild.launch.nspawn_cgroup import machine_cgroup
from imagebuild.launch.nspawn_ssh import prepare_unix_ssh
from imagebuild.launch.relay import relay_command
from imagebuild.launch.runtime_state import RuntimeState
from imagebuild.launch.ssh_keys import HOST_KEY_ALIAS, ssh_argv
from pytest_mkosi.machine.console import readable
from pytest_mkosi.machine.runner import Runner
from pytest_mkosi.machine.state import StateDir, kill_tree
from pytest_mkosi.transport.ssh import SshConnection, unix_socket

if TYPE_CHECKING:
    from imagebuild.config import Config

SUPERVISOR = Path(__file__).with_name("nspawn_supervisor.py")


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
    # The supervisor process, not this one, holds the console and the container (see the module's doc).
    can_outlive_session = True

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
        self._cgroup = machine_cgroup(name)  # None: nspawn splits this process's cgroup, as it would anyway
        if self._cgroup is not None:
            for directory in self._cgroup.directories:
                self._state.record_cgroup(directory)
        # Written by the thread that reads the supervisor's events, read by the others.
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None  # the supervisor
        self._nspawn_pid: int | None = None
        self._generation = 0  # how many times systemd-nspawn was started
        self._started_generation = 0
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
        return nspawn_command(self.config, self.tree, options, [*self._access.init_args, "systemd.show_status=yes"])

    @property
    def _console_socket(self) -> Path:
        return self.state_dir / "console.sock"

    def _start_supervisor(self) -> subprocess.Popen[bytes]:
        if self._cgroup is not None:
            self._cgroup.remove()  # what an earlier container (crashed, powered off) left below it
            self._cgroup.create()
        spec = self.state_dir / "supervisor.json"
        spec.write_text(json.dumps({
            "argv": self._argv(), "state_dir": str(self.state_dir), "console_log": str(self.console_log_path),
            "console_socket": str(self._console_socket),
            "cgroups": [str(d) for d in self._cgroup.directories] if self._cgroup is not None else [],
            # The last boot's socket: the new boot binds it again, and connecting waits until it does.
            "unlink_before_spawn": [str(self._access.socket)],
        }))
        with (self.state_dir / "supervisor.log").open("ab") as log:
            # stdin: a pipe only this process holds; EOF tells the supervisor the session ended.
            return subprocess.Popen([sys.executable, "-I", str(SUPERVISOR), str(spec)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, start_new_session=True)

    def _follow(self, process: subprocess.Popen[bytes]) -> None:
        """Read the supervisor's events until it exits (after the last systemd-nspawn exited)."""
        assert process.stdout is not None
        try:
            for line in process.stdout:
                what, _, value = line.decode().split()
                with self._changed:
                    if what == "spawned":
                        self._nspawn_pid, self._generation = int(value), self._generation + 1
                        if self._state is not None:
                            self._state.record_process(int(value))
                    else:
                        self._returncode = int(value)
                    self._changed.notify_all()
        finally:
            returncode = process.wait()
            with self._changed:
                if self._generation == self._started_generation:  # it never started systemd-nspawn
                    self._spawn_error = RuntimeError(f"its supervisor exited with status {returncode}: "
                                                     f"{self._supervisor_log()}")
                self._nspawn_pid = None
                self._exited.set()
                self._changed.notify_all()

    def _supervisor_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.state_dir / "supervisor.log").read_text(errors="replace").strip()[-2000:]
        return ""

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
            self._started_generation = generation = self._generation
            self._exited.clear()
            try:
                self._process = process = self._start_supervisor()
            except BaseException:
                self._exited.set()
                raise
            self._state.record_process(process.pid)
            self._supervisor = threading.Thread(target=self._follow, args=(process,), name=f"nspawn {self.name}",
                                                daemon=True)
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
                process.send_signal(signal.SIGTERM)  # the supervisor stops systemd-nspawn
            if not self._exited.wait(timeout):
                self._kill()
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()
        if self._cgroup is not None:
            self._cgroup.remove()
        if self._state is not None:
            self._state.remove()
            self._state = None

    def power_off_hard(self) -> None:
        self._kill()

    def _kill(self) -> None:
        """SIGKILL the container's processes, then systemd-nspawn (which reaps them first: killed at once, they
        would be left as zombies to the host's init); the supervisor then exits, as it restarts nspawn only
        after a reboot. The supervisor and anything left are killed if it does not."""
        self._stopping = True
        self._close_ssh()
        with self._lock:
            process = self._process if self.is_running() else None
            nspawn = self._nspawn_pid
        if process is None:
            return
        if nspawn is not None:
            kill_tree(nspawn)
        if not self._exited.wait(10):
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

    def reconnect(self, *, timeout: float = 120.0, settle: bool = True) -> None:
        """A new connection (every connection to the socket meets a new sshd, so nothing needs settling)."""
        self._close_ssh()
        with self._connect_lock:
            self._connect(timeout)

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
        if not self.is_running():
            raise ConnectionError(f"{self.name} is not running")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self._console_socket))
            sock.sendall(text.encode())

    def ssh_command(self) -> str:
        keys = self._access.keys
        return shlex.join(ssh_argv(key=keys.client_key, known_hosts=keys.known_hosts,
                                   proxy=relay_command("unix", str(self._access.socket))))

    def runtime_record(self) -> RuntimeState | None:
        if self._process is None:
            return None
        keys = self._access.keys
        # The supervisor's pid: it ends with the container.
        return RuntimeState(pid=self._process.pid, transport="unix", key=str(keys.client_key),
                            known_hosts=str(keys.known_hosts), host_key_alias=HOST_KEY_ALIAS,
                            ssh_socket=str(self._access.socket))

    def _console_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = readable(self.console_log_path.read_text(errors="replace")).splitlines()[-lines:]
            return "console:\n" + "\n".join(f"    {line}" for line in text)
        return ""

    # -- fresh machines: snapshot() once after boot, restore() before each test -------------------------

    def _snapshot_dir(self, tag: str) -> Path:
        return self.state_dir / f"snapshot-{tag}"

    def snapshot(self, tag: str = "fresh") -> float:
        """Keep a copy of the overlay's upper directory as it is now (what the boot wrote: machine id,
        host keys made at first boot, ...); seconds taken. A container's processes cannot be saved, so
        restore() boots again on a copy of it."""
        started = time.monotonic()
        target = self._snapshot_dir(tag)
        if target.exists():
            shutil.rmtree(target)
        _copy_tree(self._upper, target)
        return time.monotonic() - started

    def restore(self, tag: str = "fresh", *, timeout: float = 60.0) -> float:
        """Kill the container, put the saved upper directory back and boot again; seconds until SSH-ready."""
        started = time.monotonic()
        source = self._snapshot_dir(tag)
        if not source.is_dir():
            raise RunError(f"{self.name} has no snapshot {tag!r}: call snapshot() first")
        self._kill()
        if self._supervisor is not None:
            self._supervisor.join(10)
        shutil.rmtree(self._upper)
        _copy_tree(source, self._upper)
        self.start(timeout=timeout)
        return time.monotonic() - started


def _copy_tree(source: Path, target: Path) -> None:
    # cp -a keeps overlayfs' whiteouts (0:0 device nodes) and its trusted.* xattrs; never shutil.copytree.
    result = subprocess.run(["cp", "-a", "--reflink=auto", os.fspath(source), os.fspath(target)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RunError(f"cannot copy {source} to {target}: {result.stderr.strip()}")

