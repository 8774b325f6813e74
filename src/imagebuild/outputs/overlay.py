"""Overlay=: the output keeps only what the build changed on top of BaseTrees=.

The result is what the upper directory of an overlayfs over the base trees would hold: new and changed
entries, the directories leading to them, and a whiteout (a 0:0 character device) for every entry of the
base trees the build removed. It is computed after the build by comparing the root with the base trees
(later base trees win over earlier ones, as overlayfs layers do), so every stage can work on a complete
tree.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.context import Context

_CHUNK = 1 << 20


def _xattrs(path: Path) -> dict[str, bytes]:
    try:
        return {name: os.getxattr(path, name, follow_symlinks=False)
                for name in os.listxattr(path, follow_symlinks=False)}
    except OSError:
        return {}


def _same_content(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            chunk = fa.read(_CHUNK)
            if chunk != fb.read(_CHUNK):
                return False
            if not chunk:
                return True


def same_entry(new: Path, old: Path) -> bool:
    """Whether new (in the root) is unchanged from old (in a base tree): type, owner, mode, xattrs, data."""
    a, b = new.lstat(), old.lstat()
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or (a.st_mode, a.st_uid, a.st_gid) != (
        b.st_mode, b.st_uid, b.st_gid
    ):
        return False
    if _xattrs(new) != _xattrs(old):
        return False
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(new) == os.readlink(old)
    if stat.S_ISREG(a.st_mode):
        return a.st_size == b.st_size and _same_content(new, old)
    if stat.S_ISCHR(a.st_mode) or stat.S_ISBLK(a.st_mode):
        return a.st_rdev == b.st_rdev
    return True


def _in_bases(bases: list[Path], relative: Path) -> Path | None:
    """The entry at relative in the topmost base tree that has it."""
    for base in reversed(bases):
        candidate = base / relative
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return None


def _strip(root: Path, bases: list[Path], relative: Path) -> bool:
    """Strip the directory root/relative; return whether it is now empty."""
    directory = root / relative
    names = set(os.listdir(directory))
    empty = True
    for name in sorted(names):
        entry_relative = relative / name
        entry = root / entry_relative
        old = _in_bases(bases, entry_relative)
        if entry.is_dir() and not entry.is_symlink():
            children_empty = _strip(root, bases, entry_relative)
            if old is not None and old.is_dir() and not old.is_symlink() and children_empty and same_entry(entry, old):
                entry.rmdir()
                continue
        elif old is not None and same_entry(entry, old):
            entry.unlink()
            continue
        empty = False
    # Whiteouts for what the base trees have here and the build removed.
    for base_name in sorted({n for base in bases if (base / relative).is_dir() and not (base / relative).is_symlink()
                             for n in os.listdir(base / relative)} - names):
        os.mknod(directory / base_name, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        empty = False
    return empty


def strip_base_trees(context: Context) -> None:
    """Reduce the root to its changes against BaseTrees= when Overlay=yes."""
    config = context.config
    if not config.overlay:
        return
    bases = [Path(b) for b in config.base_trees]
    for base in bases:
        if not base.is_dir():
            raise BuildError(f"Overlay=yes: not supported yet with BaseTrees={base} (only directories)")
    _strip(context.root, bases, Path("."))
