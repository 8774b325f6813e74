"""Where the ESP's contents are assembled, and whether an image is to be made bootable.

The ESP's files (systemd-boot, UKIs, loader.conf, Secure Boot enrollment keys) are placed in the root's
/efi; the ESP partition definition of Format=disk copies /efi (CopyFiles=/efi:/) into the vfat partition.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot.kernel import Kernel, find_kernels
from imagebuild.config.enums import AUTO_BOOTABLE_FORMATS, Bootloader, ConfigFeature, OutputFormat
from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

# EFI's names for architectures: BOOT<ARCH>.EFI, systemd-boot<arch>.efi, linux<arch>.efi.stub.
EFI_ARCHITECTURES = {"x86-64": "x64", "x86": "ia32", "arm64": "aa64", "arm": "arm", "riscv64": "riscv64",
                     "loongarch64": "loongarch64"}


def esp_tree(context: Context) -> Path:
    return context.root / "efi"


def efi_architecture(config: Config) -> str:
    arch = str(config.architecture)
    try:
        return EFI_ARCHITECTURES[arch]
    except KeyError:
        raise BuildError(f"Bootable=: Architecture={arch} has no UEFI boot support here") from None


def bootable_kernels(context: Context) -> list[Kernel]:
    """The kernels to make boot entries for; empty when the image is not to be bootable.

    Bootable=yes fails without a kernel; Bootable=auto quietly builds no boot entries then.
    """
    config = context.config
    if config.bootable == ConfigFeature.disabled or config.format == OutputFormat.uki:
        # Format=uki makes its one UKI in outputs/uki.py, with the whole image as its initrd.
        return []
    if config.bootable == ConfigFeature.auto and config.format not in AUTO_BOOTABLE_FORMATS:
        return []
    kernels = find_kernels(context.root)
    if not kernels and config.bootable == ConfigFeature.enabled:
        raise BuildError(
            "Bootable=yes but the image has no kernel (/usr/lib/modules/*/vmlinuz or /boot/vmlinuz-*): "
            "add one to Packages= (linux-image-amd64 on Debian)"
        )
    return kernels


def wants_uefi(context: Context) -> bool:
    return context.config.bootloader != Bootloader.none and bool(bootable_kernels(context))
