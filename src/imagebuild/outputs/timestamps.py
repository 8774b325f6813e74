"""SourceDateEpoch=: no file of the image is newer than the epoch, so rebuilds give identical archives."""

from __future__ import annotations

import os
from pathlib import Path


def clamp_mtimes(root: Path, epoch: int) -> int:
    """Set the mtime of every entry below root (and root) that is newer than epoch to epoch.

    Older entries keep theirs (the packages' own file times are already reproducible). Symlinks are
    changed themselves, not their targets. Returns how many entries were changed.
    """
    changed = 0
    stack = [os.fspath(root)]
    if os.lstat(root).st_mtime > epoch:
        os.utime(root, (epoch, epoch), follow_symlinks=False)
        changed += 1
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                if st.st_mtime > epoch:
                    os.utime(entry.path, (epoch, epoch), follow_symlinks=False)
                    changed += 1
    return changed
