"""'not supported yet' only when a setting's value would change what this build does, and then with advice."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.config.support import refusals
from imagebuild.errors import BuildError, RunError
from imagebuild.launch.qemu import check_bootable
from imagebuild.pipeline.support import check_supported

BASE = "[Distribution]\nDistribution=debian\nRelease=trixie\n"


def config(tmp_path: Path, text: str, *args: str) -> Config:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "mkosi.conf").write_text(BASE + text)
    _, images = load(["-C", str(tmp_path), *args, "build"])
    return images[-1]


def refused(c: Config) -> list[str]:
    return [r.setting.name for r in refusals(c)]


def test_the_real_world_directory_config_passes(tmp_path: Path) -> None:
    c = config(tmp_path, "[Output]\nFormat=directory\n"
                         "[Content]\nBiosBootloader=none\nShimBootloader=none\nSELinuxRelabel=no\n")
    check_supported(c)


@pytest.mark.parametrize("text", [
    "[Output]\nFormat=disk\n[Content]\nShimBootloader=signed\n",
    "[Output]\nFormat=disk\n[Content]\nShimBootloader=unsigned\nBootloader=grub\n",
    "[Output]\nFormat=esp\n[Content]\nShimBootloader=signed\n",
    "[Output]\nFormat=directory\n[Content]\nBootable=yes\nShimBootloader=unsigned\n",
])
def test_shim_is_built_now(text: str, tmp_path: Path) -> None:
    c = config(tmp_path, text)
    assert refused(c) == []
    check_supported(c)


@pytest.mark.parametrize("setting", ["Bootloader=grub", "BiosBootloader=grub"])
def test_grub_is_built_now(setting: str, tmp_path: Path) -> None:
    check_supported(config(tmp_path, f"[Output]\nFormat=disk\n[Content]\n{setting}\n"))


WITHOUT_BOOT_LOADER = [(fmt, setting) for fmt in ("directory", "tar", "cpio", "none", "uki")
                       for setting in ("Bootloader=grub", "BiosBootloader=grub", "ShimBootloader=signed")]


@pytest.mark.parametrize(("fmt", "setting"), WITHOUT_BOOT_LOADER)
def test_boot_loader_settings_of_images_without_a_boot_loader_are_accepted(fmt: str, setting: str,
                                                                             tmp_path: Path) -> None:
    check_supported(config(tmp_path, f"[Output]\nFormat={fmt}\n[Content]\n{setting}\n"))


@pytest.mark.parametrize("bootloader", ["systemd-boot", "uki", "none"])
def test_the_boot_loaders_the_builder_installs_are_accepted(bootloader: str, tmp_path: Path) -> None:
    check_supported(config(tmp_path, f"[Output]\nFormat=disk\n[Content]\nBootloader={bootloader}\n"))


@pytest.mark.parametrize("fmt", ["uki", "disk", "directory"])
def test_microcode_host_is_built_now(fmt: str, tmp_path: Path) -> None:
    c = config(tmp_path, f"[Output]\nFormat={fmt}\n[Content]\nMicrocodeHost=yes\n")
    assert refused(c) == []
    check_supported(c)


@pytest.mark.parametrize("fmt", ["directory", "tar", "cpio"])
def test_grub_for_bios_in_a_bootable_image_that_is_no_disk_is_accepted(fmt: str, tmp_path: Path) -> None:
    # mkosi's own development config sets BiosBootloader=grub on x86-64 with Bootable=yes and Format=directory:
    # v22 writes grub for BIOS only into disk images, so the value does nothing there.
    c = config(tmp_path, f"[Output]\nFormat={fmt}\n[Content]\nBootable=yes\nBiosBootloader=grub\n")
    assert refused(c) == []


def test_no_boot_loader_at_all_makes_shim_irrelevant(tmp_path: Path) -> None:
    assert refused(config(tmp_path, "[Output]\nFormat=disk\n[Content]\nBootloader=none\nShimBootloader=signed\n")) == []


def test_bootable_no_makes_boot_loaders_irrelevant(tmp_path: Path) -> None:
    c = config(tmp_path, "[Output]\nFormat=disk\n[Content]\nBootable=no\nBootloader=grub\nBiosBootloader=grub\n")
    assert refused(c) == []


@pytest.mark.parametrize("text", ["SELinuxRelabel=no", "SELinuxRelabel=auto",
                                  "SELinuxRelabel=auto\nPackages=selinux-policy-default", "SELinuxRelabel=yes"])
def test_selinux_relabel_is_built_now(text: str, tmp_path: Path) -> None:
    c = config(tmp_path, f"[Output]\nFormat=directory\n[Content]\n{text}\n")
    assert refused(c) == []
    check_supported(c)


@pytest.mark.parametrize("value", ["no", "auto", "yes"])
def test_use_subvolumes_is_built_now(value: str, tmp_path: Path) -> None:
    c = config(tmp_path, f"[Output]\nFormat=directory\nUseSubvolumes={value}\n")
    assert refused(c) == []
    check_supported(c)


def test_qemu_settings_are_accepted_by_the_build_and_refused_by_qemu(tmp_path: Path) -> None:
    c = config(tmp_path, "[Output]\nFormat=directory\n[Host]\nQemuGui=yes\nQemuVsock=yes\n"
                         "QemuVsockConnectionId=42\n")
    check_supported(c)
    with pytest.raises(RunError, match=r"not supported yet: QemuGui=yes: .*use QemuGui=no"):
        check_bootable(c)


def test_qemu_settings_that_resolve_to_nothing_are_accepted_by_qemu(tmp_path: Path) -> None:
    check_bootable(config(tmp_path, "[Output]\nFormat=directory\n[Host]\nQemuGui=no\nQemuVsock=no\n"
                                    "QemuVsockConnectionId=42\n"))


@pytest.mark.parametrize(("text", "name", "advice"), [
    ("[Config]\nInclude=mkosi-initrd\n", "Include", "drop the Include="),
])
def test_what_is_refused_says_what_to_do(text: str, name: str, advice: str, tmp_path: Path) -> None:
    for rel in ("sync.sh", "bin/tool", "pm/etc/x"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("#!/bin/sh\n")
    c = config(tmp_path, "[Output]\nFormat=directory\n" + text)
    assert refused(c) == [name]
    with pytest.raises(BuildError, match=f"not supported yet: {name}=") as e:
        check_supported(c)
    assert advice in str(e.value)


def test_tools_tree_settings_without_the_default_tools_tree_do_not_matter(tmp_path: Path) -> None:
    (tmp_path / "pm").mkdir(parents=True)
    assert refused(config(tmp_path, "[Output]\nFormat=directory\n[Host]\nToolsTreePackageManagerTrees=pm\n")) == []


def test_an_include_of_a_file_is_fine(tmp_path: Path) -> None:
    (tmp_path).mkdir(parents=True, exist_ok=True)
    (tmp_path / "extra.conf").write_text("[Content]\nPackages=bash\n")
    assert refused(config(tmp_path, "[Output]\nFormat=directory\n[Config]\nInclude=extra.conf\n")) == []
