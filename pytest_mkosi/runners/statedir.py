"""Per-machine state directories under one parent, which nothing outlives.

Every machine of every session on this host gets `<parent>/<name>/` (keys, sockets, console log, overlay)
with a `lock` file its owner holds flock'ed while it runs. A machine's processes (qemu, swtpm) get
PR_SET_PDEATHSIG, and a small watcher process, which holds the lock too, waits for its owner to go away
(the pipe from it ends, also on SIGKILL), then kills the PIDs recorded in `*.pid` and removes the
directory. A sweep at the next start removes whatever a killed watcher left: a directory whose lock
nobody holds is stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from imagebuild.errors import RunError

# One parent for all machines' state on this host (nspawn's too, if it adopts it).
DEFAULT_PARENT = Path("/var/tmp/pytest-mkosi/machines")
LOCK_FILE = "lock"

_WATCHER = r"""
import os, shutil, signal, sys, time
from pathlib import Path
directory = Path(sys.argv[1])
sys.stdin.buffer.read()  # returns when the owner closed the pipe or died
for pidfile in directory.glob("*.pid"):
    try:
        pid = int(pidfile.read_text())
        if sys.argv[1].encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
shutil.rmtree(directory, ignore_errors=True)
"""


def _kill_recorded(directory: Path) -> None:
    """SIGKILL the processes recorded in directory/*.pid that still mention the directory (no reused PID)."""
    for pidfile in directory.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text())
            if os.fsencode(directory) in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def sweep(parent: Path) -> list[Path]:
    """Remove the state directories under `parent` whose owner is gone; return them."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for directory in parent.iterdir():
            if not directory.is_dir():
                continue
            try:
                fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                # Being made right now (the lock comes first) or half removed: only old ones are stale.
                if time.time() - directory.stat().st_mtime < 60:
                    continue
                fd = -1
            except OSError:
                continue
            try:
                if fd >= 0:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            finally:
                if fd >= 0:
                    os.close(fd)
            _kill_recorded(directory)
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def safe_name(name: str) -> str:
    # Unix socket paths are limited to 107 bytes: keep the directory name short and plain.
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:40]


class StateDir:
    """One machine's state directory, locked while this object lives."""

    def __init__(self, name: str, parent: Path | None = None) -> None:
        self.parent = parent or DEFAULT_PARENT
        self.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        sweep(self.parent)
        self.path = self.parent / safe_name(name)
        try:
            self.path.mkdir(mode=0o700)
        except FileExistsError:
            raise RunError(f"a machine named {name!r} is already running on this host ({self.path}); "
                           "give each machine a name of its own") from None
        self._lock = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self._watcher = subprocess.Popen(
            [sys.executable, "-c", _WATCHER, os.fspath(self.path)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(self._lock,),
            # Its own session: Ctrl-C in the terminal must not kill it before it has cleaned up.
            start_new_session=True,
        )

    def record_pid(self, label: str, pid: int) -> None:
        (self.path / f"{label}.pid").write_text(f"{pid}\n")

    def remove(self) -> None:
        """Remove the directory and end the watcher; safe to call twice."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._watcher.stdin is not None and not self._watcher.stdin.closed:
            self._watcher.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watcher.wait(5)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
