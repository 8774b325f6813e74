"""UseSubvolumes= on a real btrfs file system: a loop file made with the tools tree's mkfs.btrfs.

The host kernel has btrfs built in (it loads no modules), the host has no btrfs-progs: mkfs.btrfs and the
`btrfs` program that checks the results come from the default tools tree. One Debian build with
Incremental=yes caches its image; the second build restores it, and `btrfs subvolume show` says the new
output is a snapshot of the cached image (its parent UUID), not a copy.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.config import load
from imagebuild.pipeline.subbuilds import tools_tree_for
from imagebuild.tools.subvolumes import SUBVOLUME_INODE, is_subvolume
from imagebuild.tools.tools_tree import run_tool, tool
from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

CONF = """\
[Distribution]
Distribution=debian
Release=trixie

[Output]
Format=directory
ImageId=subvolumes
UseSubvolumes=yes

[Content]
Packages=systemd
Bootable=no

[Host]
Incremental=yes
"""


def tools_tree(tmp_path: Path) -> Path:
    conf = write_config(tmp_path / "tools-conf", "[Distribution]\nDistribution=debian\n[Host]\nToolsTree=default\n")
    _, images = load(["-C", str(conf), "build"])
    tree = tools_tree_for(images[-1])
    assert tree is not None
    return tree


@pytest.fixture(scope="module")
def btrfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    if "btrfs" not in Path("/proc/filesystems").read_text():
        pytest.skip("the kernel has no btrfs (grep btrfs /proc/filesystems)")
    base = tmp_path_factory.mktemp("btrfs")
    tree = tools_tree(base)
    image = base / "btrfs.img"
    with image.open("wb") as f:
        f.truncate(4 << 30)
    run_tool(tree, [tool(tree, "mkfs.btrfs"), "--quiet", image])
    mount = base / "mnt"
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", os.fspath(image), os.fspath(mount)], check=True)
    try:
        yield mount, tree
    finally:
        subprocess.run(["umount", "--lazy", os.fspath(mount)], check=False)
        image.unlink()


def subvolume_show(tree: Path, path: Path) -> dict[str, str]:
    output = run_tool(tree, [tool(tree, "btrfs"), "subvolume", "show", path])
    fields = {}
    for line in output.splitlines()[1:]:
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


@pytest.fixture(scope="module")
def built(btrfs: tuple[Path, Path]) -> tuple[Path, Path, str, str]:
    mount, _ = btrfs
    project = write_config(mount / "project", CONF)
    (mount / "cache").mkdir()
    args = ["-C", str(project), f"--output-dir={mount}/out", f"--workspace-dir={mount}/work",
            f"--cache-dir={mount}/cache"]
    first = imagebuild(*args, "build", timeout=900)
    assert first.returncode == 0, first.stderr
    second = imagebuild(*args, "--debug", "-f", "build", timeout=900)
    assert second.returncode == 0, second.stderr
    return mount, mount / "out/subvolumes", first.stderr, second.stderr


def test_the_output_and_the_cached_image_are_subvolumes(built: tuple[Path, Path, str, str],
                                                      btrfs: tuple[Path, Path]) -> None:
    mount, output, _, _ = built
    _, tree = btrfs
    assert (output / "usr/lib/systemd/systemd").exists()
    assert output.stat().st_ino == SUBVOLUME_INODE and is_subvolume(output)
    cache = mount / "cache/debian~trixie~x86-64.cache"
    assert is_subvolume(cache)
    # The real tool agrees: both are subvolumes of the file system.
    assert subvolume_show(tree, output)["Name"] == "subvolumes"
    assert subvolume_show(tree, cache)["Name"] == cache.name


def test_the_second_build_snapshots_the_cached_image(built: tuple[Path, Path, str, str],
                                                    btrfs: tuple[Path, Path]) -> None:
    mount, output, _, second = built
    _, tree = btrfs
    assert "Reusing the cached image" in second
    cache = subvolume_show(tree, mount / "cache/debian~trixie~x86-64.cache")
    # A snapshot records the subvolume it was taken of: the output of the second build is the cached image.
    assert subvolume_show(tree, output)["Parent UUID"] == cache["UUID"]


def test_no_subvolume_is_left_in_the_workspace(built: tuple[Path, Path, str, str]) -> None:
    mount, _, _, _ = built
    left = [p for p in (mount / "work").iterdir() if not p.name.startswith(".imagebuild-trash-")]
    assert left == []
    found = subprocess.run(["find", os.fspath(mount / "work"), "-mindepth", "1", "-maxdepth", "2", "-inum",
                            str(SUBVOLUME_INODE)], capture_output=True, text=True, check=True).stdout
    assert found == ""


def test_yes_off_btrfs_is_refused_before_any_work(tmp_path: Path) -> None:
    # tmp_path is on this host's ext4.
    project = write_config(tmp_path / "project", CONF)
    result = imagebuild("-C", str(project), f"--output-dir={tmp_path}/out", f"--workspace-dir={tmp_path}/work",
                        f"--cache-dir={tmp_path}", "build", timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"UseSubvolumes=yes: WorkspaceDirectory= {tmp_path}/work is on ext" in result.stderr
    assert "UseSubvolumes=auto" in result.stderr
    assert "install the distribution" not in result.stderr


def test_auto_off_btrfs_builds_plain_directories(btrfs: tuple[Path, Path], tmp_path: Path) -> None:
    from imagebuild.context import Workspace

    # On ext4 a build's root is a plain directory made by the stages; on btrfs auto makes it a subvolume.
    for parent, expected in ((tmp_path, False), (btrfs[0], True)):
        conf = CONF.replace("UseSubvolumes=yes", "UseSubvolumes=auto")
        project = write_config(parent / "auto-project", conf)
        _, images = load(["-C", str(project), f"--workspace-dir={parent}/auto-work", f"--cache-dir={parent}",
                          "build"])
        with Workspace(images[-1]) as context:
            assert is_subvolume(context.root) == expected
            assert context.root.exists() == expected
