"""Mount bookkeeping: nothing mounted below a workspace may survive it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="surrogateescape")


def mounts_below(path: Path) -> list[Path]:
    """Mount points at or below path, deepest first."""
    root = os.path.realpath(path)
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                target = _unescape(line.split()[4])
                if target == root or target.startswith(root + "/"):
                    found.append(Path(target))
    except OSError:
        return []
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def filesystem_type(path: Path) -> str:
    """The type of the file system `path` is on, from /proc/self/mounts (longest matching mount point)."""
    best, kind = "", "unknown"
    resolved = os.fspath(path.resolve())
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mountpoint = fields[1].replace("\\040", " ")
        inside = resolved == mountpoint or resolved.startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) >= len(best):
            best, kind = mountpoint, fields[2]
    return kind


def unmount_below(path: Path) -> None:
    for target in mounts_below(path):
        subprocess.run(["umount", "--lazy", os.fspath(target)], check=False, capture_output=True)


def remove_tree(path: Path) -> None:
    """Remove a workspace: unmount what is left below it, and never cross into another file system."""
    if not path.exists():
        return
    unmount_below(path)
    _remove_subvolumes(path)
    subprocess.run(["rm", "-rf", "--one-file-system", os.fspath(path)], check=False)


def _remove_subvolumes(path: Path) -> None:
    # Imported here: subvolumes.py uses filesystem_type() of this module.
    from imagebuild.tools.subvolumes import remove_subvolumes

    # What is left is rm's to report.
    with contextlib.suppress(OSError):
        remove_subvolumes(path)


TRASH_PREFIX = ".imagebuild-trash-"


def remove_tree_in_background(path: Path) -> None:
    """Remove a workspace without waiting: renamed aside at once, deleted by a detached rm.

    Deleting a workspace that holds a whole image tree (and the previous output it replaced) took ~1 s of
    every warm build. The rename is instant and the build's caller gets its result sooner; trash that an
    earlier remover left behind (it was killed) goes with it.
    """
    if not path.exists():
        return
    unmount_below(path)
    # Subvolumes go first (at once): rm --one-file-system would skip them.
    _remove_subvolumes(path)
    trash = path.with_name(TRASH_PREFIX + path.name)
    try:
        os.rename(path, trash)
    except OSError:
        remove_tree(path)
        return
    stale = [p for p in path.parent.glob(TRASH_PREFIX + "*") if p != trash and _older_than(p, 3600)]
    argv = ["rm", "-rf", "--one-file-system", os.fspath(trash), *map(os.fspath, stale)]
    try:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError:
        remove_tree(trash)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.lstat().st_mtime > seconds
    except OSError:
        return False
