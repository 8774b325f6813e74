"""Check, before building, that the workspace's file system can do what the build's tools need.

Some file systems (F2FS, some FUSE file systems) return EINVAL or EOPNOTSUPP for fallocate modes, extended
attributes or ACLs; systemd-repart then fails with a bare "Invalid argument" at the very end of a build
(troubleshooting-log.md). Probing a scratch file in the workspace directory first turns that into one
error that says which directory to move.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.config.enums import ConfigFeature
from imagebuild.errors import BuildError
from imagebuild.tools.mounts import filesystem_type

if TYPE_CHECKING:
    from imagebuild.config import Config

# linux/falloc.h
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

# Formats whose images systemd-repart and mkfs write into the workspace (sparse files, fallocate).
REPART_FORMATS = frozenset({"disk", "esp", "sysext", "confext", "portable"})

_PROBE_SIZE = 1 << 20


@dataclass(frozen=True)
class Probe:
    name: str
    why: str
    run: Callable[[int, Path], None]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _fallocate(mode: int, offset: int, length: int) -> Callable[[int, Path], None]:
    def probe(fd: int, path: Path) -> None:
        libc = _libc()
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
        if libc.fallocate(fd, mode, offset, length) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    return probe


def _xattr(fd: int, path: Path) -> None:
    # trusted.* needs root (the builder runs as root); user.* is what an unprivileged caller can set.
    name = "trusted.imagebuild-probe" if os.geteuid() == 0 else "user.imagebuild-probe"
    os.setxattr(path, name, b"1")
    os.removexattr(path, name)


def _acl(fd: int, path: Path) -> None:
    # A minimal POSIX access ACL (user::rw-, group::r--, other::r--) in the kernel's xattr encoding.
    entries = [(0x01, 6, 0xFFFFFFFF), (0x04, 4, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)]
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(path, "system.posix_acl_access", value)


ALLOCATION_PROBES = (
    Probe("fallocate", "systemd-repart allocates the image file", _fallocate(0, 0, _PROBE_SIZE)),
    Probe("fallocate punch-hole", "systemd-repart and mkfs keep images sparse",
          _fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)),
    Probe("fallocate zero-range", "systemd-repart zeroes partitions",
          _fallocate(FALLOC_FL_ZERO_RANGE, 4096, 4096)),
)
METADATA_PROBES = (
    Probe("extended attributes", "file capabilities and SELinux labels live in xattrs", _xattr),
    Probe("POSIX ACLs", "systemd-tmpfiles sets ACLs on /var/log/journal", _acl),
)


def failed_probes(directory: Path, probes: tuple[Probe, ...]) -> list[tuple[Probe, OSError]]:
    """The probes that fail on a scratch file in directory."""
    failures: list[tuple[Probe, OSError]] = []
    fd, name = tempfile.mkstemp(prefix=".imagebuild-probe-", dir=directory)
    path = Path(name)
    try:
        for probe in probes:
            try:
                probe.run(fd, path)
            except OSError as e:
                if e.errno in (errno.EPERM, errno.EACCES) and probe.run is _xattr:
                    continue  # not allowed to us, which says nothing about the file system
                failures.append((probe, e))
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return failures


def check_subvolumes(config: Config) -> None:
    """UseSubvolumes=yes: the image root is made a subvolume in the workspace and, with Format=directory,
    stays one in the output directory; both must be on btrfs (mkosi v22 failed at the end otherwise).
    With Overlay=yes the root is a plain directory (a subvolume as an overlay's upper directory fails)."""
    if config.use_subvolumes != ConfigFeature.enabled or config.overlay:
        return
    places = [("WorkspaceDirectory", paths.workspace_parent(config))]
    if str(config.format) == "directory":
        places.append(("OutputDirectory", paths.output_directory(config)))
    for setting, directory in places:
        kind = filesystem_type(directory)
        if kind != "btrfs":
            raise BuildError(
                f"UseSubvolumes=yes: {setting}= {directory} is on {kind}, not on btrfs, so the image cannot be "
                f"a btrfs subvolume there; set {setting}= to a directory on btrfs, or UseSubvolumes=auto "
                "(subvolumes where possible)"
            )


def check_workspace(config: Config) -> None:
    """Fail with advice when the workspace's file system lacks what this build needs."""
    directory = paths.workspace_parent(config)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BuildError(f"WorkspaceDirectory=: cannot create {directory}: {e.strerror}") from None
    check_subvolumes(config)
    probes: tuple[Probe, ...] = METADATA_PROBES
    if str(config.format) in REPART_FORMATS:
        probes = ALLOCATION_PROBES + probes
    try:
        failures = failed_probes(directory, probes)
    except OSError as e:
        raise BuildError(f"WorkspaceDirectory=: cannot write a file in {directory}: {e.strerror}") from None
    if not failures:
        return
    what = "; ".join(f"{p.name}: {e.strerror or e} ({p.why})" for p, e in failures)
    raise BuildError(
        f"the workspace directory {directory} is on a {filesystem_type(directory)} file system that cannot do "
        f"what the build needs — {what}. Set WorkspaceDirectory= (or --workspace-dir=) to a directory on "
        "ext4, xfs, btrfs or tmpfs, e.g. /var/tmp or /tmp"
    )
