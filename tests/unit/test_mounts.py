"""Workspace removal never follows a mount out of the workspace."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from imagebuild.tools.mounts import mounts_below, remove_tree


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
