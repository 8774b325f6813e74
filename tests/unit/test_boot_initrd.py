"""The default initrd's derived config and its cache key."""

from __future__ import annotations

from pathlib import Path

from imagebuild.boot import initrd
from imagebuild.config import Config, load
from imagebuild.context import Context


def _config(directory: Path, *args: str) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    _, images = load(["-C", str(directory), "-d", "debian", "-r", "trixie", "-t", "disk", *args, "build"])
    return images[-1]


def test_initrd_config_is_a_cpio_of_systemd_with_init(tmp_path: Path) -> None:
    include = tmp_path / "initrd.conf"
    include.write_text("[Content]\nPackages=lvm2\n")
    config = _config(tmp_path / "conf", "--initrd-package=btrfs-progs", f"--initrd-include={include}",
                     "--tools-tree=/nonexistent-is-fine-here")
    context = Context(config, tmp_path / "ws", tmp_path / "cache", tmp_path / "tools")
    derived = initrd.initrd_config(context, tmp_path / "initrd")
    assert str(derived.format) == "cpio" and str(derived.compress_output) == "zstd"
    assert str(derived.bootable) == "disabled"
    assert {"systemd", "udev", "systemd-cryptsetup", "btrfs-progs", "lvm2"} <= set(derived.packages)
    assert derived.tools_tree == tmp_path / "tools"
    extra = tmp_path / "initrd/extra"
    assert (extra / "init").readlink() == Path("usr/lib/systemd/systemd")
    assert (extra / "etc/initrd-release").readlink() == Path("../usr/lib/os-release")
    assert derived.package_cache_directory == tmp_path / "cache"


def test_cache_key_follows_the_inputs(tmp_path: Path) -> None:
    include = tmp_path / "inc.conf"
    include.write_text("[Content]\nPackages=a\n")
    base = _config(tmp_path / "a")
    packages = initrd.initrd_packages(base)
    key = initrd.cache_key(base, packages)
    assert key == initrd.cache_key(_config(tmp_path / "b"), packages)
    assert key != initrd.cache_key(base, [*packages, "lvm2"])
    with_include = _config(tmp_path / "c", f"--initrd-include={include}")
    first = initrd.cache_key(with_include, packages)
    include.write_text("[Content]\nPackages=b\n")
    assert first != initrd.cache_key(with_include, packages) != key
    assert initrd.cache_directory(_config(tmp_path / "d", f"--cache-dir={tmp_path}/c")) == tmp_path / "c/initrd"
