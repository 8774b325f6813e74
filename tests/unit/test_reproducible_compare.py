"""checks/reproducible.py: which files of two outputs differ, and in what."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pytest_mkosi.checks.reproducible import compare_artifacts, report


def tree(root: Path, content: str = "same", mtime: int = 1700000000) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/a").write_text("a")
    (root / "etc/b").write_text(content)
    (root / "link").symlink_to("etc/a")
    for p in (root / "link", root / "etc/a", root / "etc/b", root / "etc", root):
        os.utime(p, (mtime, mtime), follow_symlinks=False)
    return root


def test_identical_trees_have_no_differences(tmp_path: Path) -> None:
    a, b = tree(tmp_path / "1" / "img"), tree(tmp_path / "2" / "img")
    assert compare_artifacts([a], [b]) == []


def test_tree_differences_name_the_file_and_what_differs(tmp_path: Path) -> None:
    a, b = tree(tmp_path / "1" / "img"), tree(tmp_path / "2" / "img", content="other")
    (b / "etc/a").chmod(0o600)
    os.utime(b / "etc/a", (1700000000, 1700000000))
    (b / "only").write_text("")
    os.utime(b, (1700000000, 1700000000))
    lines = [d.describe() for d in compare_artifacts([a], [b])]
    assert "/etc/a: mode 644 != 600" in lines
    assert "/etc/b: content (size 4 != 5)" in lines
    assert "/only: only in the second" in lines
    text = "\n".join(report(compare_artifacts([a], [b]), a, b))
    assert text.startswith("the builds differ in 3 files")


def test_tar_members_are_compared_one_by_one(tmp_path: Path) -> None:
    a, b = tree(tmp_path / "1" / "t"), tree(tmp_path / "2" / "t", content="other")
    for root in (a, b):
        subprocess.run(["tar", "--sort=name", "-C", str(root), "-cf", f"{root.parent}/img.tar", "."], check=True)
        subprocess.run(["zstd", "-q", "--rm", f"{root.parent}/img.tar"], check=True)
    diffs = compare_artifacts([a.parent / "img.tar.zst"], [b.parent / "img.tar.zst"])
    assert [d.describe() for d in diffs] == ["/etc/b: content (size 4 != 5)"]
