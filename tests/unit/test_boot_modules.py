"""Kernel module selection: Include/Exclude/IncludeHost with modules.dep closure, firmware, staging."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from imagebuild.boot import modules
from imagebuild.boot.kernel import find_kernels
from imagebuild.errors import BuildError

DEP = """\
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
kernel/drivers/virtio/virtio.ko.xz:
kernel/drivers/virtio/virtio_ring.ko.xz:
kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz
kernel/fs/jbd2/jbd2.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/drivers/net/wireless/iwlwifi.ko.xz:
kernel/drivers/md/dm-verity.ko.xz: kernel/drivers/md/dm-mod.ko.xz
kernel/drivers/md/dm-mod.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
"""


def _modules_dir(root: Path, version: str = "6.1.0-1-amd64") -> Path:
    d = root / "usr/lib/modules" / version
    d.mkdir(parents=True)
    (d / "modules.dep").write_text(DEP)
    for line in DEP.splitlines():
        path = d / line.split(":")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        info = b"\0firmware=iwlwifi-9000.ucode\0" if "iwlwifi" in line else b"\0license=GPL\0"
        if "ext4.ko" in line:
            info += b"softdep=pre: crc32c\0"
        path.write_bytes(lzma.compress(b"\x7fELF" + info))
    (d / "modules.order").write_text("")
    (d / "modules.alias").write_text("alias crc32c crc32c_generic\nalias pci:v*d* virtio_blk\n")
    return d


def test_everything_by_default(tmp_path: Path) -> None:
    deps = modules.read_dependencies(_modules_dir(tmp_path))
    assert modules.select_modules(deps, modules.ModuleFilter()) == set(deps)


def test_exclude_all_include_some_brings_dependencies(tmp_path: Path) -> None:
    deps = modules.read_dependencies(_modules_dir(tmp_path))
    keep = modules.select_modules(deps, modules.ModuleFilter(include=("virtio_blk", "/ext4/"), exclude=(".*",)))
    assert keep == {
        "kernel/drivers/block/virtio_blk.ko.xz", "kernel/drivers/virtio/virtio.ko.xz",
        "kernel/drivers/virtio/virtio_ring.ko.xz", "kernel/fs/ext4/ext4.ko.xz", "kernel/fs/jbd2/jbd2.ko.xz",
        "kernel/fs/mbcache.ko.xz",
    }


def test_patterns_match_below_the_kernel_directory(tmp_path: Path) -> None:
    deps = modules.read_dependencies(_modules_dir(tmp_path))
    # "^fs/" is anchored at /usr/lib/modules/<kver>/kernel, as the man page says.
    keep = modules.select_modules(deps, modules.ModuleFilter(include=("^fs/",), exclude=(".*",)))
    assert {m.split("/")[1] for m in keep} == {"fs"}


def test_exclude_only_drops_what_nothing_needs(tmp_path: Path) -> None:
    deps = modules.read_dependencies(_modules_dir(tmp_path))
    keep = modules.select_modules(deps, modules.ModuleFilter(exclude=("wireless", "dm-mod")))
    assert "kernel/drivers/net/wireless/iwlwifi.ko.xz" not in keep
    # dm-verity still needs dm-mod.
    assert "kernel/drivers/md/dm-mod.ko.xz" in keep


def test_include_host_uses_loaded_module_names(tmp_path: Path) -> None:
    deps = modules.read_dependencies(_modules_dir(tmp_path))
    keep = modules.select_modules(deps, modules.ModuleFilter(exclude=(".*",), include_host=True),
                                  host_modules={"dm_verity"})
    assert keep == {"kernel/drivers/md/dm-verity.ko.xz", "kernel/drivers/md/dm-mod.ko.xz"}


def test_bad_regex_names_the_setting(tmp_path: Path) -> None:
    deps = modules.read_dependencies(_modules_dir(tmp_path))
    with pytest.raises(BuildError, match=r"KernelModulesInitrdExclude=\(: not a valid regular expression"):
        modules.select_modules(deps, modules.ModuleFilter(exclude=("(",)), prefix="KernelModulesInitrd")


def test_missing_modules_dep(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"modules\.dep is missing"):
        modules.read_dependencies(tmp_path)


def test_module_name() -> None:
    assert modules.module_name("kernel/drivers/md/dm-verity.ko.xz") == "dm_verity"
    assert modules.module_name("kernel/fs/ext4/ext4.ko") == "ext4"


def test_firmware_and_staging(tmp_path: Path) -> None:
    root = tmp_path / "root"
    d = _modules_dir(root)
    (root / "usr/lib/firmware").mkdir(parents=True)
    (root / "usr/lib/firmware/iwlwifi-9000.ucode.xz").write_bytes(b"fw")
    keep = {"kernel/drivers/net/wireless/iwlwifi.ko.xz"}
    assert modules.firmware_of(d / next(iter(keep))) == ["iwlwifi-9000.ucode"]
    staging = tmp_path / "staging"
    modules.stage_modules(root, d, keep, staging)
    assert (staging / "usr/lib/modules/6.1.0-1-amd64/kernel/drivers/net/wireless/iwlwifi.ko.xz").is_file()
    assert (staging / "usr/lib/modules/6.1.0-1-amd64/modules.order").is_file()
    assert (staging / "usr/lib/firmware/iwlwifi-9000.ucode.xz").read_bytes() == b"fw"
    assert not (staging / "usr/lib/modules/6.1.0-1-amd64/kernel/fs").exists()


def test_remove_unselected(tmp_path: Path) -> None:
    d = _modules_dir(tmp_path)
    deps = modules.read_dependencies(d)
    keep = modules.select_modules(deps, modules.ModuleFilter(include=("virtio_blk",), exclude=(".*",)))
    assert modules.remove_unselected(tmp_path, d, keep, deps) == len(deps) - 3
    assert (d / "kernel/drivers/virtio/virtio.ko.xz").exists()
    assert not (d / "kernel/fs/ext4/ext4.ko.xz").exists()


def test_find_kernels_newest_first_and_needs_an_image(tmp_path: Path) -> None:
    for version in ("6.1.0-9-amd64", "6.10.0-1-amd64", "6.2.0-1-amd64"):
        (tmp_path / "usr/lib/modules" / version).mkdir(parents=True)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/vmlinuz-6.1.0-9-amd64").write_bytes(b"k")
    (tmp_path / "usr/lib/modules/6.10.0-1-amd64/vmlinuz").write_bytes(b"k")
    kernels = find_kernels(tmp_path)
    assert [k.version for k in kernels] == ["6.10.0-1-amd64", "6.1.0-9-amd64"]
    assert kernels[1].image == tmp_path / "boot/vmlinuz-6.1.0-9-amd64"


def test_soft_dependencies_through_aliases(tmp_path: Path) -> None:
    d = _modules_dir(tmp_path)
    deps = modules.read_dependencies(d)
    selection = modules.ModuleFilter(include=("/ext4/",), exclude=(".*",))
    # ext4 reaches crc32c only through "softdep=pre: crc32c", an alias of crc32c_generic.
    assert "kernel/crypto/crc32c_generic.ko.xz" not in modules.select_modules(deps, selection)
    assert "kernel/crypto/crc32c_generic.ko.xz" in modules.select_modules(deps, selection, modules_dir=d)
    assert modules.read_aliases(d) == {"crc32c": ["crc32c_generic"]}
