"""ExtraSearchPaths=: directories and single programs in front of $PATH while imagebuild runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.tools.run import find_tool
from imagebuild.tools.search_paths import extra_search_paths


def config(tmp_path: Path, text: str) -> Config:
    (tmp_path / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\n" + text)
    _, images = load(["-C", str(tmp_path), "build"])
    return images[-1]


def program(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho from-extra\n")
    path.chmod(0o755)
    return path


def test_directories_and_files_come_before_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    tool = program(tmp_path / "bin/imagebuild-test-tool")
    single = program(tmp_path / "single/cpio")
    c = config(tmp_path, "[Host]\nExtraSearchPaths=bin:single/cpio\n")
    with extra_search_paths(c):
        assert find_tool("imagebuild-test-tool") == str(tool)
        # A file is found by its name, before the host's own cpio.
        assert Path(find_tool("cpio")).resolve() == single
        assert os.environ["PATH"].endswith(":/usr/bin:/bin")
    assert os.environ["PATH"] == "/usr/bin:/bin"
    assert shutil.which("imagebuild-test-tool") is None


def test_a_tools_tree_makes_them_unused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    program(tmp_path / "bin/imagebuild-test-tool")
    (tmp_path / "tools/usr/bin").mkdir(parents=True)
    c = config(tmp_path, "[Host]\nExtraSearchPaths=bin\nToolsTree=tools\n")
    with extra_search_paths(c):
        assert os.environ["PATH"] == "/usr/bin:/bin"
