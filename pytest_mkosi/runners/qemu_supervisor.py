"""The process that runs one boot of a qemu machine, so that the machine can outlive the session that kept it.

It enters imagebuild.launch.qemu.qemu_machine (swtpm, virtiofsd, QemuDrives= files), starts qemu, and leaves
it when qemu exits; qemu, swtpm and virtiofsd get SIGTERM when this process dies (PR_SET_PDEATHSIG, which is
tied to the thread that started them: this process has one). Its stdin is a pipe whose other end only the
session holds: EOF means the session ended, however it ended (even by SIGKILL). Then, unless the state
directory holds machine/state.py's `kept` marker, it stops qemu; a kept machine runs on with everything qemu
serves itself (console.log, the QMP, console and SSH sockets), and this process reads the readiness port in
the session's place: the guest announces every new sshd there, and a write to a virtio-serial port that no
host reads blocks, so without a reader no sshd would start after the first (the unit's start times out).
SIGTERM stops qemu too (the runner's last resort, state.py's reaper and its stop command).

Run as a script with imagebuild importable (`python -P qemu_supervisor.py SPEC`, SPEC a pickle the runner
wrote: the Config, the tools tree, the QemuOptions, whether qemu starts paused); it imports nothing of
pytest_mkosi, so it starts in well under a second. Events for the runner go to stdout, one JSON object a
line: `machine` (accelerator, its note, the helpers' pids) once the helpers run, `spawned` (qemu's pid),
`exited` (qemu's status), `error` (why the boot could not start).
"""

from __future__ import annotations

import json
import os
import pickle
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

KEPT = "kept"  # machine/state.py's marker (not imported: that would import the plugin)
WAKE = 0.5  # seconds: how often the loop looks at its deadline (a signal handler may have set it meanwhile)
STOP_GRACE = 10.0  # from SIGTERM to qemu until SIGKILL


class Qemu(Protocol):
    """What the supervisor needs of the qemu process (subprocess.Popen, or a fake in the unit tests)."""

    pid: int

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


@dataclass
class Spec:
    """What the runner tells the supervisor, pickled as a plain dict (vars()): unpickling a class of this
    module would import the plugin."""

    config: Any  # imagebuild.config.Config (Any: this module's types stay import-free)
    tools_tree: Path | None
    options: Any  # imagebuild.launch.qemu.QemuOptions
    state_dir: Path
    paused: bool = False  # -S: a snapshot is loaded into it before it runs
    ready_socket: Path | None = None  # qemu's end of the readiness port, read once the session is gone


class Events:
    """The runner's end of stdout; once the session is gone, events are dropped (a kept machine runs on)."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def send(self, **fields: object) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, (json.dumps(fields) + "\n").encode())
        except OSError:
            self.fd = None


class Supervisor:
    """The decisions: when to stop qemu (session gone and not kept, SIGTERM), when to kill it (it did not stop
    within STOP_GRACE), and what to tell the runner. The process layer comes in through `qemu` and `exit_fd`
    (readable once qemu exited: a pidfd)."""

    def __init__(self, qemu: Qemu, exit_fd: int, *, state_dir: Path, session_fd: int, events: Events,
                 ready_socket: Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.qemu = qemu
        self.exit_fd = exit_fd
        self.state_dir = state_dir
        self.ready_socket = ready_socket
        self.ready: socket.socket | None = None  # connected while the machine runs kept
        self.kept = False
        self.session_fd: int | None = session_fd
        self.events = events
        self.clock = clock
        self.deadline: float | None = None
        self.killed = False

    def stop(self) -> None:
        """Stop qemu (SIGTERM: qemu exits at once, as when its window is closed); killed at the deadline."""
        if self.deadline is None and self.qemu.poll() is None:
            self.qemu.terminate()
            self.deadline = self.clock() + STOP_GRACE

    def on_session(self) -> None:
        assert self.session_fd is not None
        try:
            data = os.read(self.session_fd, 4096)
        except OSError:
            data = b""
        if data:
            return
        self.session_fd = None  # EOF: the session ended
        if (self.state_dir / KEPT).exists():
            self.kept = True
            self.read_readiness()
        else:
            self.stop()

    def read_readiness(self) -> None:
        """Hold the readiness port and drop what it says (connected again whenever qemu hung up)."""
        if self.ready_socket is None:
            return
        if self.ready is not None:
            try:
                data = self.ready.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                return
            self.ready.close()
            self.ready = None
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(str(self.ready_socket))
        except OSError:
            connection.close()
            return  # tried again at the next wake
        connection.setblocking(False)
        self.ready = connection

    def on_deadline(self) -> None:
        if self.deadline is not None and self.clock() >= self.deadline and self.qemu.poll() is None:
            self.qemu.kill()
            self.killed = True
            self.deadline = self.clock() + STOP_GRACE

    def run(self) -> int:
        """Until qemu exits; its status."""
        self.events.send(event="spawned", pid=self.qemu.pid)
        while True:
            readable = [self.exit_fd] + ([self.session_fd] if self.session_fd is not None else []) + \
                ([self.ready.fileno()] if self.ready is not None else [])
            ready, _, _ = select.select(readable, [], [], WAKE)
            if self.session_fd is not None and self.session_fd in ready:
                self.on_session()
            if self.exit_fd in ready:
                break
            if self.kept and (self.ready is None or self.ready.fileno() in ready):
                self.read_readiness()
            self.on_deadline()
        status = self.wait()
        self.events.send(event="exited", status=status)
        return status

    def wait(self) -> int:
        while (status := self.qemu.poll()) is None:
            time.sleep(0.01)
        return status


def start_qemu(argv: list[str], state_dir: Path) -> subprocess.Popen[bytes]:
    from imagebuild.launch.lifetime import die_with_parent

    (state_dir / "qemu.argv").write_text(shlex.join(argv) + "\n")
    with open(state_dir / "qemu.log", "wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=die_with_parent)


def helper_pids(vm: Any) -> list[int]:
    """swtpm's and virtiofsd's pids (the reaper records them too)."""
    processes = ([vm.swtpm.process] if vm.swtpm is not None else []) + [d.process for d in vm.virtiofsd]
    return [p.pid for p in processes if p is not None]


def main(argv: list[str]) -> int:
    from imagebuild.errors import ImageBuildError
    from imagebuild.launch.lifetime import unwind_on_termination
    from imagebuild.launch.qemu import qemu_machine

    spec = Spec(**pickle.loads(Path(argv[0]).read_bytes()))
    # Ctrl-C on the session's terminal is for the session, which stops its machines itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Until qemu runs, SIGTERM unwinds qemu_machine (swtpm stopped, files removed).
    signal.signal(signal.SIGTERM, unwind_on_termination)
    events = Events(sys.stdout.fileno())
    try:
        with qemu_machine(spec.config, tools_tree=spec.tools_tree, options=spec.options) as vm:
            events.send(event="machine", accelerator=vm.accelerator, note=vm.accelerator_note,
                        helpers=helper_pids(vm))
            qemu = start_qemu([*vm.argv, "-S"] if spec.paused else vm.argv, spec.state_dir)
            supervisor = Supervisor(qemu, os.pidfd_open(qemu.pid), state_dir=spec.state_dir,
                                    session_fd=sys.stdin.fileno(), events=events, ready_socket=spec.ready_socket)
            signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
            return supervisor.run()
    except ImageBuildError as e:
        events.send(event="error", message=str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
