"""SELinuxRelabel=: a directory image with Debian's selinux-policy-default (selinux_image/) built for real; the
files carry the policy's labels in security.selinux (set by setfiles from the tools tree), and the same
image built with SELinuxRelabel=no carries none (this host runs no SELinux: nothing else labels them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import imagebuild

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parent / "selinux_image"

# What the reference policy's file contexts say for a few files every such image has.
EXPECTED = {
    "etc/passwd": "etc_t",
    "etc/shadow": "shadow_t",
    "usr/bin/bash": "shell_exec_t",
    "usr/lib/systemd/systemd": "init_exec_t",
    "etc/selinux/config": "selinux_config_t",
}


def label(path: Path) -> str | None:
    try:
        return os.getxattr(path, "security.selinux", follow_symlinks=False).rstrip(b"\0").decode()
    except OSError:
        return None


def build(tmp_path: Path, *args: str) -> tuple[Path, str]:
    directory = tmp_path / "image"
    shutil.copytree(CONFIG, directory)
    result = imagebuild("-C", str(directory), *args, "build", timeout=1500)
    assert result.returncode == 0, result.stdout + result.stderr
    return directory / "mkosi.output" / "selinux", result.stdout + result.stderr


def test_relabel_labels_the_files_for_the_images_policy(tmp_path: Path) -> None:
    root, log = build(tmp_path / "yes")
    assert "SELinux policy default (policy." in log
    for relative, type_ in EXPECTED.items():
        assert label(root / relative) == f"system_u:object_r:{type_}:s0", relative
    unlabelled = [p for p in (root / "usr/bin").iterdir() if label(p) is None]
    assert unlabelled == []


def test_relabel_no_leaves_the_files_unlabelled(tmp_path: Path) -> None:
    root, log = build(tmp_path / "no", "--selinux-relabel=no")
    assert "SELinux policy" not in log
    assert [label(root / relative) for relative in EXPECTED] == [None] * len(EXPECTED)
