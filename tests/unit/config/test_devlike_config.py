"""The project's config shaped like mkosi's own development config resolves as mkosi v22 resolves it."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.pipeline.support import check_supported

DEVLIKE = Path(__file__).resolve().parents[2] / "integration" / "configs" / "devlike"


def resolve(*args: str) -> Config:
    _, images = load(["-C", str(DEVLIKE), "-d", "debian", "-r", "trixie", *args, "build"])
    return images[-1]


def test_drop_ins_match_distribution_and_architecture() -> None:
    config = resolve("--architecture=x86-64")
    assert {"less", "file"} <= set(config.packages)
    assert not any("no-such-package" in p for p in config.packages)
    assert config.environment["DEVLIKE_ARCH"] == "x86-64"
    assert config.repositories == ["non-free-firmware"]


def test_the_other_architectures_drop_in() -> None:
    config = resolve("--architecture=arm64")
    assert "devlike-no-such-package-arm64" in config.packages and "file" not in config.packages
    assert config.environment["DEVLIKE_ARCH"] == "arm64"
    assert str(config.bios_bootloader) == "none"  # 15-x86-64.conf did not match


def test_at_defaults_yield_to_plain_assignments_and_the_command_line() -> None:
    config = resolve("--architecture=x86-64")
    # @Hostname= in mkosi.conf loses to Hostname= of a later drop-in; the other @ defaults stand.
    assert config.hostname == "devlike"
    assert str(config.format) == "directory" and config.image_id == "devlike"
    assert str(config.shim_bootloader) == "unsigned" and str(config.bios_bootloader) == "grub"
    assert str(config.selinux_relabel) == "disabled"
    # 15-bootable.conf: @Bootable=yes for directory and disk images of x86-64 and arm64 only.
    assert str(config.bootable) == "enabled"
    assert {"linux-image-cloud-amd64", "shim-unsigned", "systemd-boot-efi"} <= set(config.packages)
    assert str(resolve("--format=tar").bootable) == "auto"
    assert resolve("--format=tar").hostname == "devlike-default"  # 15-hostname.conf needs disk or directory
    assert resolve("--hostname=cli").hostname == "cli"


@pytest.mark.parametrize("arch", ["x86-64", "arm64"])
def test_its_boot_loader_settings_do_not_stop_a_directory_build(arch: str) -> None:
    check_supported(resolve(f"--architecture={arch}"))
