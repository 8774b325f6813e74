"""Mount bookkeeping: nothing mounted below a workspace may survive it."""

from __future__ import annotations

import os
import subprocess
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


def unmount_below(path: Path) -> None:
    for target in mounts_below(path):
        subprocess.run(["umount", "--lazy", os.fspath(target)], check=False, capture_output=True)


def remove_tree(path: Path) -> None:
    """Remove a workspace: unmount what is left below it, and never cross into another file system."""
    if not path.exists():
        return
    unmount_below(path)
    subprocess.run(["rm", "-rf", "--one-file-system", os.fspath(path)], check=False)
