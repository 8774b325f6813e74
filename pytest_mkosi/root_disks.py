"""An ext4 file system of a cached directory image, made once beside its cache entry (`<entry>.root.ext4`),
which the qemu runner boots through a qcow2 overlay instead of sharing the tree over virtiofs: under TCG,
systemd's start reads thousands of small files, and over virtiofs a boot to SSH-ready took 37-62 s where
the same tree on ext4 took 27-28 s (mkfs included; made once, it is not paid again).

The image cache removes the file with its entry (pruning) and before it replaces an entry (a rebuild), so
it never outlives the tree it was made from; a session that holds the entry keeps it from being replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock

from imagebuild.launch.disks import tree_to_ext4

# The files pytest_mkosi.enrolled_vars makes beside a disk image's entry: the variables, the "nothing to
# enroll" marker, the lock.
VARS_SUFFIXES = (".ovmf-vars.fd", ".ovmf-vars.none", ".ovmf-vars.lock")
SUFFIXES = (".root.ext4", ".root.lock", *VARS_SUFFIXES)


def root_disk_path(entry: Path) -> Path:
    return Path(f"{entry}{SUFFIXES[0]}")


def is_cache_entry(entry: Path) -> bool:
    # pytest_mkosi.images.ImageCache writes `<entry>.json` once the entry is complete.
    return entry.is_dir() and Path(f"{entry}.json").is_file()


def root_disk(tree: Path, *, tools_tree: Path | None) -> Path | None:
    """The ext4 file system of `tree`, the main artifact of an image cache entry, made first if missing;
    None for a tree outside the cache (nothing is written beside a user's own output)."""
    entry = tree.parent
    if not is_cache_entry(entry):
        return None
    target = root_disk_path(entry)
    # xdist workers and concurrent sessions make it once between them.
    with FileLock(f"{entry}{SUFFIXES[1]}"):
        if target.is_file():
            return target
        partial = entry.parent / f".{target.name}.making-{os.getpid()}"
        try:
            tree_to_ext4(tree, partial, minimum_size=None, tools_tree=tools_tree)
            # On disk before it gets its name: a host that loses power must not keep a torn file system under
            # the name that says it is complete (and the first boot does not compete with its writeback).
            fd = os.open(partial, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def forget_root_disk(entry: Path) -> None:
    """Remove the files made from `entry` (before the entry is replaced or removed): its ext4 and its
    enrolled firmware variables."""
    for suffix in (SUFFIXES[0], *VARS_SUFFIXES[:2]):
        Path(f"{entry}{suffix}").unlink(missing_ok=True)
