"""Distribution=custom builds for real from trees alone: no package manager runs, the tar's owners survive."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from imagebuild.config.settings import SUPPORTED
from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration


def make_tree_tar(path: Path) -> Path:
    """A small OS tree as a tar archive, with a file owned by a user the host need not have."""
    with tarfile.open(path, "w") as tar:
        for name in ("usr", "usr/lib", "etc", "srv"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data, uid, mode in (
            ("usr/lib/os-release", b"ID=custom\nNAME=Custom\n", 0, 0o644),
            ("srv/owned", b"data\n", 4321, 0o600),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mode = len(data), uid, uid, mode
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("etc/os-release")
        link.type, link.linkname = tarfile.SYMTYPE, "../usr/lib/os-release"
        tar.addfile(link)
    return path


def check_tree(tree: Path) -> None:
    assert (tree / "usr/lib/os-release").read_text() == "ID=custom\nNAME=Custom\n"
    assert (tree / "etc/os-release").is_symlink()
    owned = (tree / "srv/owned").stat()
    assert (owned.st_uid, owned.st_gid, owned.st_mode & 0o777) == (4321, 4321, 0o600)
    # Nothing a package manager would have left.
    assert not (tree / "var/lib/dpkg").exists() and not (tree / "var/lib/rpm").exists()


def test_custom_from_a_skeleton_tar(tmp_path: Path) -> None:
    tar = make_tree_tar(tmp_path / "tree.tar")
    conf = write_config(tmp_path / "conf", f"[Distribution]\nDistribution=custom\n[Output]\nFormat=directory\n"
                                           f"Output=custom\n[Content]\nSkeletonTrees={tar}\n")
    out = tmp_path / "out"
    result = imagebuild("-C", str(conf), f"--output-dir={out}", "--debug", "build")
    assert result.returncode == 0, result.stderr
    check_tree(out / "custom")
    assert not any(tool in result.stderr for tool in ("mmdebstrap", "dnf ", "pacman ", "zypper "))


@pytest.mark.skipif("BaseTrees" not in SUPPORTED, reason="BaseTrees= is marked not_yet in the settings table")
def test_custom_from_a_base_tar(tmp_path: Path) -> None:
    tar = make_tree_tar(tmp_path / "base.tar")
    conf = write_config(tmp_path / "conf", f"[Distribution]\nDistribution=custom\n[Output]\nFormat=directory\n"
                                           f"Output=custom\n[Content]\nBaseTrees={tar}\n")
    out = tmp_path / "out"
    result = imagebuild("-C", str(conf), f"--output-dir={out}", "build")
    assert result.returncode == 0, result.stderr
    check_tree(out / "custom")


def test_custom_refuses_packages_and_leaves_no_output(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "conf", "[Distribution]\nDistribution=custom\n[Output]\nFormat=directory\n"
                                           "[Content]\nPackages=vim\n")
    out = tmp_path / "out"
    result = imagebuild("-C", str(conf), f"--output-dir={out}", "build")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "Packages=vim: Distribution=custom has no package manager" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
