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


# The /etc entries a tools tree brings along: the tree's binaries need its own library cache, and its
# /usr/bin symlinks point into its own /etc/alternatives.
TOOLS_TREE_ETC = ("ld.so.cache", "alternatives", "ssl", "ca-certificates")


def tools_tree_wrapper(tools_tree: Path) -> list[str]:
    """The argv prefix that runs a command with the tools tree's /usr in place of the host's.

    The command sees the whole host file system (paths given to it mean what they mean on the host),
    except /usr and the few /etc entries of TOOLS_TREE_ETC, which come from the tree. It runs in a
    private mount namespace, so nothing changes for other processes. The host is merged-/usr, so /bin,
    /sbin and /lib follow /usr.
    """
    tree = tools_tree.absolute()
    # --die-with-parent: bwrap does not pass signals on, so stopping it must stop the command too.
    argv = ["bwrap", "--die-with-parent", "--dev-bind", "/", "/", "--ro-bind", os.fspath(tree / "usr"), "/usr",
            # Only the tree's programs: `#!/usr/bin/env python3` must not find a pyenv shim or a venv.
            "--setenv", "PATH", "/usr/bin:/usr/sbin"]
    for entry in TOOLS_TREE_ETC:
        source, target = tree / "etc" / entry, Path("/etc") / entry
        # Only over what exists on both sides: bwrap would otherwise create the target on the host.
        if (source.exists() or source.is_symlink()) and (target.exists() or target.is_symlink()):
            argv += ["--ro-bind", os.fspath(source), os.fspath(target)]
    return [*argv, "--"]


def find_tool(name: str, *, package: str | None = None, tools_tree: Path | None = None) -> str:
    """The absolute path of a tool, or a BuildError saying which package provides it.

    With a tools tree the tool must be in its /usr/bin or /usr/sbin (as the man page says) and the path
    returned is where the command sees it when run with `run(..., tools_tree=)`: /usr/bin/NAME.
    """
    if tools_tree is not None:
        for directory in ("usr/bin", "usr/sbin"):
            candidate = tools_tree / directory / name
            if candidate.exists() or candidate.is_symlink():
                return f"/{directory}/{name}"
        hint = f" (add the package '{package}' to ToolsTreePackages=)" if package else ""
        raise BuildError(f"the tool '{name}' is not in the tools tree {tools_tree}{hint}")
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
    tools_tree: Path | None = None,
) -> str:
    """Run a command to completion and return its combined output.

    With tools_tree the command runs with that tree's /usr (see tools_tree_wrapper); pass the path
    find_tool(..., tools_tree=) returned.
    On failure the CommandError names `what` (or the command), its exit status and the last lines of its
    output, and carries the whole output for callers that look for a known cause in it.
    """
    args = [os.fspath(a) for a in argv]
    if not args:
        raise BuildError("internal error: run() was given an empty command")
    what = what or os.path.basename(args[0])
    if tools_tree is not None:
        args = [*tools_tree_wrapper(tools_tree), *args]
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
        name = what
        shown = "\n".join(f"    {line}" for line in tail)
        raise CommandError(
            f"{name} failed with exit status {status}; its last output (--debug shows all of it):\n{shown}",
            output=output,
        )
    return output
