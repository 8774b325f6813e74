"""Run the image's own programs against the image: its root becomes / in a bubblewrap sandbox.

Why the image's binaries and not the host's with --root=: the host's systemd (252 on this machine) is older
than the images it builds (trixie: 257), and systemd-sysusers, systemd-tmpfiles, systemctl and
systemd-hwdb read configuration files whose syntax grows with each release (e.g. `u!` lines in sysusers.d
since 257). The image's own tools understand exactly the files the image ships, and a tool missing from the
image means the step does not apply to it (no systemd: no sysusers.d, no units to preset).

Inside the sandbox the tools run "online" on the image's /; SYSTEMD_OFFLINE=1 tells systemctl that no
manager is running, so it edits unit symlinks instead of talking to a D-Bus that is not there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.tools.run import find_tool, run

if TYPE_CHECKING:
    from imagebuild.context import Context

# Where a program is looked for in the image, in this order (merged /usr or not).
BINARY_DIRECTORIES = ("usr/bin", "usr/sbin", "bin", "sbin")
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _resolve_in_root(root: Path, relative: str) -> Path | None:
    """The path `relative` names inside root, following symlinks as the image would (never leaving it)."""
    current = root
    parts = [p for p in relative.split("/") if p]
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p] + parts
            continue
        if not candidate.exists():
            return None
        current = candidate
    return current


def image_path(root: Path, relative: str) -> Path | None:
    """The host path of the image's `relative` path with the image's symlinks resolved, None if missing."""
    return _resolve_in_root(root, relative)


def image_has_program(root: Path, name: str) -> bool:
    """Whether the image ships an executable `name` in one of its binary directories."""
    for directory in BINARY_DIRECTORIES:
        path = _resolve_in_root(root, f"{directory}/{name}")
        if path is not None and path.is_file() and os.access(path, os.X_OK):
            return True
    return False


def sandbox_command(
    root: Path,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    ro_binds: Sequence[tuple[Path, str]] = (),
    binds: Sequence[tuple[Path, str]] = (),
) -> list[str]:
    """bwrap command line that runs argv with root as / (fresh /dev, /proc, /tmp and /run).

    ro_binds: host paths shown read-only at a path inside the sandbox (under /run or /tmp); binds: the
    same, writable.
    """
    extra: list[str] = []
    for name, value in (env or {}).items():
        extra += ["--setenv", name, value]
    for source, target in ro_binds:
        extra += ["--ro-bind", os.fspath(source), target]
    for source, target in binds:
        extra += ["--bind", os.fspath(source), target]
    return [
        find_tool("bwrap", package="bubblewrap"),
        "--bind", os.fspath(root), "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        "--tmpfs", "/run",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--clearenv",
        "--setenv", "PATH", SANDBOX_PATH,
        "--setenv", "SYSTEMD_OFFLINE", "1",
        "--setenv", "LANG", "C.UTF-8",
        *extra,
        "--",
        *argv,
    ]


def run_in_image(
    context: Context,
    argv: Sequence[str],
    *,
    what: str | None = None,
    env: Mapping[str, str] | None = None,
    ro_binds: Sequence[tuple[Path, str]] = (),
    binds: Sequence[tuple[Path, str]] = (),
) -> str:
    """Run one of the image's programs on the image; returns its output, CommandError on failure."""
    return run(sandbox_command(context.root, argv, env=env, ro_binds=ro_binds, binds=binds),
               what=what or argv[0])
