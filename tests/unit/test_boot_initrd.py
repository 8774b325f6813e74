"""The default initrd's derived config and its cache key."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.boot import initrd
from imagebuild.boot.kernel import Kernel
from imagebuild.config import Config, load
from imagebuild.context import Context
from imagebuild.errors import BuildError
from imagebuild.pipeline import image_sandbox


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


def test_modules_initrd_indexes_with_the_images_depmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The host need not have kmod (this one has none); an image with a kernel has its own depmod.
    context = Context(_config(tmp_path / "conf"), tmp_path / "ws", tmp_path / "cache", None)
    root = context.root
    version = "6.12.1-amd64"
    modules_dir = root / "usr/lib/modules" / version
    (modules_dir / "kernel").mkdir(parents=True)
    (modules_dir / "kernel/virtio.ko").write_bytes(b"\x7fELF\0license=GPL\0")
    (modules_dir / "modules.dep").write_text("kernel/virtio.ko:\n")
    (modules_dir / "modules.order").write_text("")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/depmod").write_text("#!/bin/sh\n")
    (root / "usr/bin/depmod").chmod(0o755)
    (root / "boot").mkdir()
    (root / f"boot/vmlinuz-{version}").write_bytes(b"kernel")
    context.artifacts.mkdir(parents=True)
    calls: list[tuple[list[str], list[tuple[Path, str]]]] = []

    def in_image(ctx: Context, argv: list[str], *, binds: list[tuple[Path, str]], **kwargs: object) -> str:
        calls.append((list(argv), list(binds)))
        (source, _), = binds
        # What the image's depmod sees at the bound path: the staged modules with the lib -> usr/lib link.
        assert (source / "lib/modules" / version / "kernel/virtio.ko").is_file()
        return ""

    def no_host_tool(*args: object, **kwargs: object) -> str:
        raise BuildError("the tool 'depmod' was not found on this host")

    monkeypatch.setattr(image_sandbox, "run_in_image", in_image)
    monkeypatch.setattr(initrd, "tool", no_host_tool)
    target = initrd.build_modules_initrd(context, Kernel(version, root / f"boot/vmlinuz-{version}"))
    assert target.is_file()
    (argv, binds), = calls
    assert argv == ["depmod", "--all", "--basedir", binds[0][1], version]
