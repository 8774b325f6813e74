"""Run external programs, logging them under --debug and turning failures into BuildErrors."""

from __future__ import annotations

import collections
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagebuild.errors import BuildError
from imagebuild.log import logger

# How many lines of a failed command's output the error shows.
TAIL_LINES = 25


class CommandError(BuildError):
    """An external command failed; `output` is everything it printed."""

    def __init__(self, message: str, *, output: str) -> None:
        super().__init__(message)
        self.output = output


def find_tool(name: str, *, package: str | None = None) -> str:
    """The absolute path of a host tool, or a BuildError saying which package provides it."""
    path = shutil.which(name)
    if path is None:
        hint = f" (install the Debian package '{package}')" if package else ""
        raise BuildError(f"the tool '{name}' was not found on this host{hint}")
    return path


def stop_process_group(proc: subprocess.Popen[str], grace: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> str:
    """Run a command to completion and return its combined output.

    On failure the CommandError names `what` (or the command), its exit status and the last lines of its
    output, and carries the whole output for callers that look for a known cause in it.
    """
    args = [os.fspath(a) for a in argv]
    logger.debug("+ %s", shlex.join(args))
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.Popen(
            args,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            text=True,
            errors="replace",
            # Its own process group, so that an interruption can stop the command and all its children.
            start_new_session=True,
        )
    except FileNotFoundError as e:
        raise BuildError(f"cannot run {args[0]}: {e.strerror}") from None
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            lines.append(line)
            logger.debug("  %s", line.rstrip("\n"))
        status = proc.wait()
    except BaseException:
        # Ctrl-C or a kill: stop the command and its children. SIGTERM first lets tools such as
        # mmdebstrap unmount what they mounted in the workspace.
        stop_process_group(proc)
        raise
    output = "".join(lines)
    if status != 0:
        name = what or os.path.basename(args[0])
        shown = "\n".join(f"    {line}" for line in tail)
        raise CommandError(
            f"{name} failed with exit status {status}; its last output (--debug shows all of it):\n{shown}",
            output=output,
        )
    return output
