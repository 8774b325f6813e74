"""Move finished artifacts into the output directory so that they appear whole or not at all."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from imagebuild.config.enums import ConfigFeature
from imagebuild.errors import BuildError
from imagebuild.tools import subvolumes


def _copy(source: Path, destination: Path) -> None:
    if subvolumes.is_subvolume(source) and subvolumes.on_btrfs(destination.parent):
        # A subvolume (UseSubvolumes=) stays one on another btrfs file system.
        subvolumes.copy_tree(source, destination, ConfigFeature.auto)
    elif source.is_dir() and not source.is_symlink():
        subprocess.run(["cp", "-a", "--reflink=auto", os.fspath(source), os.fspath(destination)], check=True)
    else:
        shutil.copy2(source, destination, follow_symlinks=False)


def _remove(path: Path) -> None:
    if subvolumes.is_subvolume(path):
        subvolumes.remove_subvolumes(path)
    elif path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def publish(staged: Path, destination: Path, *, trash: Path) -> None:
    """Put `staged` at `destination` atomically, replacing what is there.

    A previous artifact is first renamed into `trash` (a directory in the workspace), so that a
    failure between the two renames leaves the old artifact recoverable, never a half-written one.
    Across file systems the artifact is copied to a hidden name beside its destination first.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    hidden = destination.parent / f".{destination.name}.imagebuild-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(staged, hidden)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise BuildError(f"cannot move {staged} to {destination.parent}: {e.strerror}") from None
        try:
            _copy(staged, hidden)
        except BaseException:
            _remove(hidden)
            raise
    try:
        if destination.exists() or destination.is_symlink():
            old = trash / f"old-{destination.name}"
            try:
                os.rename(destination, old)
            except OSError:
                _remove(destination)
        os.rename(hidden, destination)
    except BaseException:
        _remove(hidden)
        raise
