"""Workspace removal never follows a mount out of the workspace."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from imagebuild.tools.mounts import TRASH_PREFIX, mounts_below, remove_tree, remove_tree_in_background


def test_remove_tree(tmp_path: Path) -> None:
    (tmp_path / "ws/a/b").mkdir(parents=True)
    (tmp_path / "ws/a/b/f").write_text("x")
    remove_tree(tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_remove_tree_unmounts_instead_of_deleting_through_a_bind_mount(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("keep")
    target = tmp_path / "ws/root/dev"
    target.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(precious), str(target)], check=True)
    try:
        assert mounts_below(tmp_path / "ws") == [target]
        remove_tree(tmp_path / "ws")
    finally:
        subprocess.run(["umount", "--lazy", str(target)], check=False, capture_output=True)
    assert (precious / "keep").read_text() == "keep"
    assert not (tmp_path / "ws").exists()


def test_a_workspace_is_renamed_aside_at_once_and_removed_in_the_background(tmp_path: Path) -> None:
    workspace = tmp_path / "imagebuild-workspace-x"
    (workspace / "root/usr").mkdir(parents=True)
    (workspace / "root/usr/file").write_text("x")
    stale = tmp_path / f"{TRASH_PREFIX}imagebuild-workspace-killed"
    (stale / "root").mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / f"{TRASH_PREFIX}imagebuild-workspace-other"  # another build's, being removed now
    fresh.mkdir()
    remove_tree_in_background(workspace)
    assert not workspace.exists()
    deadline = time.monotonic() + 30
    while (stale.exists() or (tmp_path / f"{TRASH_PREFIX}imagebuild-workspace-x").exists()) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name]
