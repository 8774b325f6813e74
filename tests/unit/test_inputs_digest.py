"""The image cache key: same inputs, same key; any change to the config or an input file, a new key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imagebuild.config import load
from imagebuild.pipeline.inputs import config_digest
from tests.helpers import MINIMAL


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(MINIMAL, tmp_path / "minimal", ignore=shutil.ignore_patterns("mkosi.output", "tests"))
    return tmp_path / "minimal"


def digest(tree: Path, *args: str) -> str:
    _, images = load(["-C", str(tree), *args, "build"])
    return config_digest(images[-1])


def test_unchanged_tree_has_a_stable_key(tree: Path) -> None:
    assert digest(tree) == digest(tree)


def test_output_location_is_not_part_of_the_key(tree: Path, tmp_path: Path) -> None:
    assert digest(tree) == digest(tree, f"--output-dir={tmp_path}/elsewhere")


def test_extra_file_content_changes_the_key(tree: Path) -> None:
    before = digest(tree)
    (tree / "mkosi.extra/etc/imagebuild-example").write_text("changed\n")
    assert digest(tree) != before


def test_file_mode_and_new_files_change_the_key(tree: Path) -> None:
    before = digest(tree)
    (tree / "mkosi.extra/etc/imagebuild-example").chmod(0o600)
    after_mode = digest(tree)
    assert after_mode != before
    (tree / "mkosi.extra/etc/new").write_text("")
    assert digest(tree) != after_mode


def test_settings_change_the_key(tree: Path) -> None:
    assert digest(tree) != digest(tree, "--hostname=other")
    assert digest(tree) != digest(tree, "--release=bookworm")
