"""Bad input ends in one clear line naming what and where, a non-zero status and no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import imagebuild, write_config


def assert_clean_error(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("imagebuild: error:"), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_missing_config_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert_clean_error(imagebuild("-C", str(missing), "summary"), str(missing))


def test_unknown_distribution(tmp_path: Path) -> None:
    write_config(tmp_path, "[Distribution]\nDistribution=debain\n")
    assert_clean_error(imagebuild("-C", str(tmp_path), "summary"), "mkosi.conf:2", "Distribution", "debian")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_config(tmp_path: Path) -> None:
    conf = write_config(tmp_path, "[Distribution]\nDistribution=debian\n") / "mkosi.conf"
    conf.chmod(0)
    assert_clean_error(imagebuild("-C", str(tmp_path), "summary"), "mkosi.conf")


def test_config_that_is_not_text(tmp_path: Path) -> None:
    # What root meets instead of a permission error: a mkosi.conf it can open but not read as text.
    (tmp_path / "mkosi.conf").write_bytes(b"[Distribution]\nDistribution=\xff\xfe\n")
    assert_clean_error(imagebuild("-C", str(tmp_path), "summary"), "mkosi.conf", "not a text file")


def test_unknown_verb_is_an_error(tmp_path: Path) -> None:
    write_config(tmp_path, "[Distribution]\nDistribution=debian\n")
    result = imagebuild("-C", str(tmp_path), "frobnicate")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_unsupported_setting_build_is_refused_before_work(tmp_path: Path) -> None:
    # Include=mkosi-initrd: a value the builder does not act on yet (UseSubvolumes=yes was that example before).
    write_config(tmp_path, "[Config]\nInclude=mkosi-initrd\n[Output]\nFormat=directory\n")
    result = imagebuild("-C", str(tmp_path), "--output-dir", str(tmp_path / "out"), "build")
    # (The config loader warns about the Include= first.)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "imagebuild: error: not supported yet: Include=mkosi-initrd" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
