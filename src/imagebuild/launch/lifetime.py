"""Nothing a VM needs may outlive the process that started it, even when that process is SIGKILLed."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1
OWNER_FILE = "owner.pid"


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (someone else's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_scratch(parent: Path, prefix: str) -> None:
    """Remove scratch directories whose owner process is gone (it was killed before it could clean up)."""
    for directory in parent.glob(f"{prefix}*"):
        try:
            owner = int((directory / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not process_alive(owner):
            shutil.rmtree(directory, ignore_errors=True)


def unwind_on_termination(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM/SIGHUP handler for the interactive verbs: unwind normally, so that swtpm is stopped and
    scratch directories and runtime records are removed."""
    raise SystemExit(128 + signum)


def make_scratch(parent: Path, prefix: str) -> Path:
    """A new scratch directory, marked with this process as its owner; stale ones are swept first."""
    parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        sweep_stale_scratch(parent, prefix)
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    (scratch / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return scratch
