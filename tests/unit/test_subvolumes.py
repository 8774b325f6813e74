"""UseSubvolumes=: the checks before the build, the ioctl numbers, and behaviour off btrfs.

The real thing (a btrfs loop file, snapshots, deletion) is tests/integration/test_subvolumes.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.config.enums import ConfigFeature
from imagebuild.errors import BuildError
from imagebuild.pipeline import workspace_check
from imagebuild.tools import subvolumes


def config(tmp_path: Path, text: str) -> Config:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\n" + text)
    _, images = load(["-C", str(project), f"--workspace-dir={tmp_path}/work", f"--output-dir={tmp_path}/out",
                      "build"])
    return images[-1]


def test_the_ioctl_numbers_are_the_kernels() -> None:
    # linux/btrfs.h: _IOW(BTRFS_IOCTL_MAGIC, 1 / 14 / 15, struct btrfs_ioctl_vol_args)
    assert subvolumes.BTRFS_IOC_SNAP_CREATE == 0x50009401
    assert subvolumes.BTRFS_IOC_SUBVOL_CREATE == 0x5000940E
    assert subvolumes.BTRFS_IOC_SNAP_DESTROY == 0x5000940F


def test_yes_off_btrfs_is_refused_naming_the_directory(tmp_path: Path) -> None:
    c = config(tmp_path, "[Output]\nFormat=directory\nUseSubvolumes=yes\n")
    with pytest.raises(BuildError, match=rf"UseSubvolumes=yes: WorkspaceDirectory= {tmp_path}/work is on "
                                         r"\S+, not on btrfs.*UseSubvolumes=auto"):
        workspace_check.check_workspace(c)


def test_yes_needs_the_output_directory_on_btrfs_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = f"{tmp_path}/work"
    monkeypatch.setattr(workspace_check, "filesystem_type", lambda p: "btrfs" if str(p) == work else "xfs")
    with pytest.raises(BuildError, match=rf"OutputDirectory= {tmp_path}/out is on xfs"):
        workspace_check.check_subvolumes(config(tmp_path, "[Output]\nFormat=directory\nUseSubvolumes=yes\n"))
    # Only a directory output stays a subvolume in the output directory.
    workspace_check.check_subvolumes(config(tmp_path, "[Output]\nFormat=tar\nUseSubvolumes=yes\n"))


@pytest.mark.parametrize("text", ["UseSubvolumes=auto", "UseSubvolumes=no",
                                  "UseSubvolumes=yes\nOverlay=yes\n[Content]\nBaseTrees=base"])
def test_what_needs_no_btrfs_is_accepted(tmp_path: Path, text: str) -> None:
    (tmp_path / "project/base").mkdir(parents=True)
    workspace_check.check_subvolumes(config(tmp_path, f"[Output]\nFormat=directory\n{text}\n"))


def test_off_btrfs_trees_are_plain_directories(tmp_path: Path) -> None:
    assert not subvolumes.on_btrfs(tmp_path)
    assert subvolumes.make_tree(tmp_path / "auto", ConfigFeature.auto) is False
    assert (tmp_path / "auto").is_dir()
    with pytest.raises(BuildError, match=r"UseSubvolumes=yes: .* is not on btrfs"):
        subvolumes.make_tree(tmp_path / "yes", ConfigFeature.enabled)
    source = tmp_path / "source"
    (source / "etc").mkdir(parents=True)
    (source / "etc/file").write_text("x")
    subvolumes.copy_tree(source, tmp_path / "copy/deeper", ConfigFeature.auto)
    assert (tmp_path / "copy/deeper/etc/file").read_text() == "x"
    assert not subvolumes.is_subvolume(tmp_path / "copy/deeper")
    # Nothing to do off btrfs.
    subvolumes.remove_subvolumes(tmp_path)
    assert source.exists()


def test_names_are_checked_before_the_kernel_sees_them() -> None:
    with pytest.raises(OSError):
        subvolumes._vol_args(0, "a/b")
    assert len(subvolumes._vol_args(3, "root")) == 4096
