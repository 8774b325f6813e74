"""Overlay=: only the changes against BaseTrees= remain, removals become whiteouts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imagebuild.config import load
from imagebuild.context import Context
from imagebuild.outputs.overlay import same_entry, strip_base_trees
from tests.helpers import write_config


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_same_entry_compares_content_and_mode(tmp_path: Path) -> None:
    _tree(tmp_path, {"a": "x", "b": "x", "c": "y"})
    assert same_entry(tmp_path / "a", tmp_path / "b")
    assert not same_entry(tmp_path / "a", tmp_path / "c")
    (tmp_path / "b").chmod(0o600)
    assert not same_entry(tmp_path / "a", tmp_path / "b")


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are device nodes")
def test_only_changes_remain(tmp_path: Path) -> None:
    base = tmp_path / "base"
    _tree(base, {"usr/lib/keep": "1", "usr/lib/changed": "old", "usr/lib/removed": "x", "etc/gone/file": "g",
                 "etc/same": "s"})
    write_config(tmp_path / "conf", "[Distribution]\nDistribution=debian\nRelease=trixie\n"
                 f"[Content]\nBaseTrees={base}\n[Output]\nFormat=sysext\nOverlay=yes\n")
    _, images = load(["-C", str(tmp_path / "conf"), "build"])
    context = Context(images[-1], tmp_path / "ws", tmp_path / "cache")
    root = context.root
    _tree(root, {"usr/lib/keep": "1", "usr/lib/changed": "new", "usr/bin/new": "n", "etc/same": "s"})
    strip_base_trees(context)
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert found == ["etc", "etc/gone", "usr", "usr/bin", "usr/bin/new", "usr/lib", "usr/lib/changed",
                     "usr/lib/removed"]
    for whiteout in ("etc/gone", "usr/lib/removed"):
        mode = (root / whiteout).lstat()
        assert stat.S_ISCHR(mode.st_mode) and mode.st_rdev == os.makedev(0, 0)
    assert (root / "usr/lib/changed").read_text() == "new"
