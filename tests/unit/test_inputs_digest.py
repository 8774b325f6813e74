"""The image cache key: same inputs, same key; any change to the config or an input file, a new key."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest

import imagebuild
from imagebuild.config import load
from imagebuild.pipeline import inputs
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


def test_a_change_to_the_builder_changes_the_key(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A development checkout keeps its version number from commit to commit: the key covers the code itself,
    # except the parts that only run machines.
    package = tmp_path / "imagebuild"
    shutil.copytree(Path(imagebuild.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    fake = types.SimpleNamespace(__file__=str(package / "__init__.py"), __version__=imagebuild.__version__)
    monkeypatch.setattr(inputs, "imagebuild", fake)

    def key() -> str:
        inputs.builder_digest.cache_clear()
        return digest(tree)

    try:
        before = key()
        with (package / "launch" / "qemu.py").open("a") as f:
            f.write("# runs machines only\n")
        assert key() == before
        with (package / "pipeline" / "pipeline.py").open("a") as f:
            f.write("# a builder change\n")
        assert key() != before
    finally:
        inputs.builder_digest.cache_clear()
