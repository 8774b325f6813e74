"""Per-machine state directories that nothing outlives: one known parent, a flock'd lock, a reaper.

Every machine keeps its keys, sockets, console log and overlay in `<parent>/<name>/` (parent:
/run/pytest-mkosi as root, else $TMPDIR/pytest-mkosi-<uid>). While a session uses it, the directory's `lock`
file is flock'd by the session and by a small reaper process (`reaper_main` below) that waits for the session
to end: when the session dies in any way, even by SIGKILL, the reaper kills the machine's recorded processes
and removes the directory. A directory whose lock nobody holds is stale and is swept by the next session.

The reaper is this file run as a script (`python -I state.py DIR FD`): it needs only the standard library,
so it starts in a few milliseconds instead of importing the plugin.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOCK = "lock"
PROCESSES = "processes"
# cgroups made for the machine (one path a line), removed once its processes are gone.
CGROUPS = "cgroups"
# Present when the session left the machine running on purpose (--mkosi-keep-on-failure): no reaper or
# sweep stops it while it runs; `python3 -I state.py stop DIR` does.
KEPT = "kept"
# Runtime records (imagebuild.launch.runtime_state) written for a kept machine, one path a line: reap()
# removes those that still name one of the machine's processes.
RUNTIME_RECORDS = "runtime-records"
# How long `state.py stop` lets a kept machine power off cleanly before killing it.
STOP_GRACE = 20.0
_counter = itertools.count(1)
# Socket paths (console, QMP, SSH) below the directory must fit AF_UNIX's 107 bytes: names stay short and plain.
NAME_MAX = 64
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_MAX - 1}}}")


def state_parent() -> Path:
    if os.geteuid() == 0:
        return Path("/run/pytest-mkosi")
    return Path(tempfile.gettempdir()) / f"pytest-mkosi-{os.getuid()}"


def unique_machine_name(base: str) -> str:
    """A machine name no other machine on this host has: xdist workers, sessions and machines of one session."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{base[:32].rstrip('-')}-{worker}-{os.getpid()}-{next(_counter)}"[:64]


def _start_time(pid: int) -> str | None:
    # Field 22 of /proc/PID/stat; with the pid it names a process unambiguously (pids are reused).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_tree(pid: int, *, grace: float = 10.0) -> None:
    """SIGKILL everything below a process, give it `grace` seconds to see its children die and exit, then
    SIGKILL it too. For systemd-nspawn the child is the container's init: killing it ends the container's
    pid namespace, and nspawn reaps it, so nothing is left to the host's init as a zombie."""
    for target in _descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def recorded_processes(directory: Path) -> list[int]:
    """The recorded processes of a state directory that still run (same pid and start time)."""
    alive = []
    with contextlib.suppress(OSError):
        for line in (directory / PROCESSES).read_text().splitlines():
            pid, start = line.split()
            if _start_time(int(pid)) == start:
                alive.append(int(pid))
    return alive


def reap(directory: Path, *, grace: float = 5.0) -> None:
    """Stop what a state directory's machine left running (TERM, then KILL after `grace`) and remove it."""
    processes = recorded_processes(directory)
    for pid in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while recorded_processes(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in recorded_processes(directory):
        kill_tree(pid)
    with contextlib.suppress(OSError):
        for line in (directory / CGROUPS).read_text().splitlines():
            remove_cgroup(Path(line))
    remove_runtime_records(directory)
    shutil.rmtree(directory, ignore_errors=True)


def remove_runtime_records(directory: Path) -> None:
    """Remove the runtime records written for this machine, unless one names another machine by now (a later
    `imagebuild qemu` or `imagebuild boot` of the same config writes the same file)."""
    ours = set()
    with contextlib.suppress(OSError):
        ours = {int(line.split()[0]) for line in (directory / PROCESSES).read_text().splitlines()}
    with contextlib.suppress(OSError):
        for line in (directory / RUNTIME_RECORDS).read_text().splitlines():
            record = Path(line)
            with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                if json.loads(record.read_text()).get("pid") in ours:
                    record.unlink()


def remove_cgroup(directory: Path) -> None:
    """rmdir a cgroup and the cgroups below it, deepest first (this module stays stdlib-only for the reaper,
    so it does not use imagebuild.launch.nspawn_cgroup's twin)."""
    for parent, children, _ in os.walk(directory, topdown=False):
        for child in children:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(parent, child))
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def sweep(parent: Path) -> list[Path]:
    """Reap the state directories under `parent` whose lock nobody holds; return them."""
    swept = []
    with contextlib.suppress(FileNotFoundError):
        for directory in parent.iterdir():
            if directory.name.startswith(".") or not directory.is_dir():
                continue
            if (directory / KEPT).exists() and recorded_processes(directory):
                continue  # kept on purpose and still running; once it stopped, it is swept like any other
            try:
                fd = os.open(directory / LOCK, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                fd = None  # no lock at all: not ours, or half removed; stale either way
            except OSError:
                continue
            try:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use
            finally:
                if fd is not None:
                    os.close(fd)
            reap(directory)
            swept.append(directory)
    return swept


class StateDir:
    """A machine's state directory, locked while this process (or its reaper) lives."""

    def __init__(self, path: Path, lock_fd: int, reaper: subprocess.Popen[bytes], pipe: int) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._reaper = reaper
        self._pipe = pipe

    @classmethod
    def create(cls, name: str, parent: Path | None = None) -> StateDir:
        if not _NAME.fullmatch(name):
            raise ValueError(f"machine name {name!r}: use at most {NAME_MAX} letters, digits, '.', '_' and '-'")
        parent = parent or state_parent()
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        sweep(parent)
        # Made under a hidden name and renamed once locked, so a sweep never sees it unlocked.
        building = parent / f".{name}-{secrets.token_hex(4)}"
        building.mkdir(mode=0o700)
        lock_fd = os.open(building / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (building / LOCK).write_text(f"{os.getpid()}\n")
        path = parent / name
        try:
            os.rename(building, path)
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
            os.close(lock_fd)
            from imagebuild.errors import RunError  # not at the top: the reaper runs this file stdlib-only

            raise RunError(f"a machine named {name!r} is already running on this host ({path}); give each "
                           "machine a name of its own (machine.state.unique_machine_name())") from None
        # The reaper's end of the pipe reads EOF when this process is gone, however it ended.
        read_end, write_end = os.pipe()
        reaper = subprocess.Popen(
            [sys.executable, "-I", __file__, str(path), str(read_end)],
            pass_fds=(read_end, lock_fd), start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(read_end)
        return cls(path, lock_fd, reaper, write_end)

    def record_cgroup(self, directory: Path) -> None:
        """Note a cgroup made for this machine: reap() removes it after the machine's processes."""
        with (self.path / CGROUPS).open("a") as f:
            f.write(f"{directory}\n")

    def record_process(self, pid: int) -> None:
        """Note a process the reaper must stop if this session dies (systemd-nspawn, qemu, swtpm, ...)."""
        start = _start_time(pid)
        if start is not None:
            with (self.path / PROCESSES).open("a") as f:
                f.write(f"{pid} {start}\n")

    def remove(self) -> None:
        """Remove the directory (its processes must be stopped already) and let the reaper go."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._reaper.wait(10)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def reaper_main(argv: list[str]) -> int:
    """Block reading the pipe whose other end only the session holds; EOF means the session is gone (it
    ended, failed or was killed). Then stop the directory's recorded processes and remove it; after a
    normal end the session removed it already and there is nothing left to do."""
    directory, fd = Path(argv[0]), int(argv[1])
    # Ctrl-C on the session's terminal is for the session, which cleans up itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while os.read(fd, 4096):
        pass
    if directory.exists() and not (directory / KEPT).exists():
        reap(directory)
    return 0


def keep(directory: Path) -> None:
    """Leave the machine of `directory` running after this session: its reaper and later sweeps pass it by."""
    (directory / KEPT).write_text(f"{os.getpid()}\n")


def note_runtime_record(directory: Path, record: Path) -> None:
    """A runtime record written for the machine of `directory`: removed with it (reap(), `state.py stop`)."""
    with (directory / RUNTIME_RECORDS).open("a") as f:
        f.write(f"{record}\n")


def stop_main(argv: list[str]) -> int:
    """`state.py stop DIR`: stop a kept machine and remove its state."""
    if len(argv) != 1 or not (Path(argv[0]) / PROCESSES).exists():
        print("usage: state.py stop STATE_DIRECTORY (a machine's state directory, as the session printed it)",
              file=sys.stderr)
        return 2
    reap(Path(argv[0]), grace=STOP_GRACE)
    print(f"stopped the machine of {argv[0]} and removed its state (and its record for 'imagebuild ssh')")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["stop"]:
        sys.exit(stop_main(sys.argv[2:]))
    sys.exit(reaper_main(sys.argv[1:]))
