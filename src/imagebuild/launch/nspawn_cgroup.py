"""A cgroup of its own for each systemd-nspawn container on a host without systemd.

With --keep-unit (no systemd, no machined on the host) systemd-nspawn makes no scope: it splits the cgroup it
was started in into `supervisor` (itself) and `payload` (the container). Every container started from the
same cgroup then gets the same `payload`, and the containers' systemd instances manage one shared set of
unit cgroups: when one container's unit ends, its systemd removes `payload/system.slice/<unit>`, which
another container's systemd is about to spawn into ("<unit>: Failed to spawn executor: No such file or
directory", a clone into a cgroup that vanished), and stopping a unit in one container kills the processes of
the same unit in the other. So each container is started in a cgroup made for it, named after the machine,
below the caller's own, in every hierarchy systemd-nspawn uses (the unified one, and name=systemd on a
hybrid host).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "imagebuild-"


@dataclass(frozen=True)
class MachineCgroup:
    """The machine's cgroup directories, one per hierarchy (all with the same path below their root)."""

    directories: tuple[Path, ...]

    def create(self) -> None:
        for directory in self.directories:
            directory.mkdir(exist_ok=True)

    def enter(self) -> None:
        """Move the calling process in (a preexec function: nothing but system calls)."""
        for directory in self.directories:
            fd = os.open(directory / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def remove(self) -> None:
        """Remove the directories and what the container made below them (it must have ended: cgroups with
        processes cannot be removed, and are left)."""
        for directory in self.directories:
            remove_tree(directory)


def remove_tree(directory: Path) -> None:
    """rmdir a cgroup and its children, deepest first (their control files go with them)."""
    for parent, children, _ in os.walk(directory, topdown=False):
        for child in children:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(parent, child))
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """/proc/self/cgroup as {"unified" | "systemd": path} for the two hierarchies systemd-nspawn uses."""
    found = {}
    for line in proc_cgroup.splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            found["unified"] = path
        elif "name=systemd" in controllers.split(","):
            found["systemd"] = path
    return found


def _mounts(mountinfo: str) -> dict[str, tuple[str, Path]]:
    """The mounts of those hierarchies: {kind: (root of the mount in the hierarchy, mount point)}."""
    found: dict[str, tuple[str, Path]] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        separator = fields.index("-")
        fstype, options = fields[separator + 1], fields[separator + 3] if len(fields) > separator + 3 else ""
        root, point = fields[3], Path(fields[4].replace("\\040", " "))
        if fstype == "cgroup2":
            found.setdefault("unified", (root, point))
        elif fstype == "cgroup" and "name=systemd" in options.split(","):
            found.setdefault("systemd", (root, point))
    return found


def machine_cgroup(name: str, *, proc_cgroup: str | None = None, mountinfo: str | None = None) -> MachineCgroup | None:
    """The cgroup to start machine `name` in, below this process's own; None where this process cannot
    make one (not root, no writable cgroup hierarchy): then systemd-nspawn splits the caller's cgroup as before."""
    if proc_cgroup is None or mountinfo is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    own, mounts = _own_paths(proc_cgroup), _mounts(mountinfo)
    directories = []
    for kind in ("systemd", "unified"):
        if kind not in own or kind not in mounts:
            continue
        root, point = mounts[kind]
        path = own[kind]
        if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
            path = path[len(root.rstrip("/")):]  # the mount shows this part of the hierarchy only
        directories.append(point / path.lstrip("/") / f"{PREFIX}{name}")
    if not directories or not all(os.access(d.parent, os.W_OK) for d in directories):
        return None
    return MachineCgroup(tuple(directories))
