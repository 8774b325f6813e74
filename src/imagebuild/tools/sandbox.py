"""Command lines that run a program in a bubblewrap sandbox: the host read-only, chosen paths writable.

The sandbox keeps root's capabilities (scripts chown, mknod and chroot inside the image) but gets its own
mount, PID and IPC namespaces, and its own network namespace (loopback only) unless network is allowed.
Everything of the host is visible read-only; /tmp is an empty tmpfs; /work is a tmpfs that holds the
script's mount points (mkosi's layout: /work/src, /work/dest, ...) beside the host's own /work entries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagebuild.tools.run import find_tool

# Where the script's own directories and files are mounted inside the sandbox.
WORK = Path("/work")


@dataclass(frozen=True)
class Mount:
    """source (a host path) appears at target inside the sandbox; writable unless read_only."""

    source: Path
    target: Path
    read_only: bool = False

    def options(self) -> list[str]:
        return ["--ro-bind" if self.read_only else "--bind", os.fspath(self.source), os.fspath(self.target)]


def _host_work_entries(work: Path) -> list[Mount]:
    """The host's own /work entries, mounted back read-only on top of the sandbox's /work tmpfs."""
    try:
        names = sorted(os.listdir(work))
    except OSError:
        return []
    return [Mount(work / name, work / name, read_only=True) for name in names]


def _reachable(path: Path) -> list[Mount]:
    """Mount a host path back if the sandbox's tmpfs /tmp or /work hides it (e.g. the Python running us)."""
    resolved = path.resolve()
    for hidden in (Path("/tmp"), WORK):
        if resolved.is_relative_to(hidden):
            return [Mount(resolved, resolved, read_only=True)]
    return []


def sandbox_argv(
    command: Sequence[str],
    *,
    mounts: Sequence[Mount] = (),
    env: Mapping[str, str] | None = None,
    network: bool = False,
    cwd: Path | None = None,
    keep_visible: Sequence[Path] = (),
    host_work: Path = WORK,
) -> list[str]:
    """The bwrap command line that runs command isolated from the host.

    mounts come after the read-only host and are applied in the given order (parents before children).
    keep_visible: host paths the sandboxed program needs (the Python that runs the helpers) even if they
    live below /tmp or /work.
    """
    argv = [
        find_tool("bwrap", package="bubblewrap"),
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--cap-add", "ALL",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        # Sticky and world-writable like a real /tmp: apt's _apt user writes its temporary files there.
        "--perms", "1777", "--tmpfs", "/tmp",
        "--tmpfs", os.fspath(WORK),
    ]
    if not network:
        argv.append("--unshare-net")
    for mount in _host_work_entries(host_work):
        argv += mount.options()
    for path in keep_visible:
        for mount in _reachable(path):
            argv += mount.options()
    for mount in mounts:
        argv += mount.options()
    if env is not None:
        argv.append("--clearenv")
        for name, value in sorted(env.items()):
            argv += ["--setenv", name, value]
    if cwd is not None:
        argv += ["--chdir", os.fspath(cwd)]
    argv += ["--", *command]
    return argv
