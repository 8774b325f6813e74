"""ShimBootloader=: shim as the firmware's default loader, with the real boot loader as its second stage.

What mkosi v22 does, and so this module:
- shim goes to EFI/BOOT/BOOT<ARCH>.EFI and MokManager (mm<arch>.efi) beside it; the boot loader (systemd-boot,
  grub, or with Bootloader=uki the UKI itself) goes to EFI/BOOT/grub<arch>.EFI, the file shim starts
  (grub.EFI on openSUSE).
- signed: the distribution's signed binaries as they are (shim and MokManager signed by Microsoft or the
  distribution, systemd-boot's *.efi.signed, the signed grub, prebuilt signed UKIs); nothing is signed here.
- unsigned: the unsigned shim and MokManager, signed with SecureBootKey= when SecureBoot= is on.
Missing binaries fail a Bootable=yes build and leave a Bootable=auto one without shim (with a warning).
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot.esp import efi_architecture, esp_tree, wants_uefi
from imagebuild.boot.secure_boot import sign
from imagebuild.config.enums import ConfigFeature, ShimBootloader
from imagebuild.errors import BuildError
from imagebuild.log import logger

if TYPE_CHECKING:
    from imagebuild.context import Context

# Where distributions put shim and MokManager ({arch} is the EFI architecture, x64, aa64, ...).
SIGNED_SHIM = ("usr/lib/shim/shim{arch}.efi.signed.latest",  # Ubuntu
               "usr/lib/shim/shim{arch}.efi.signed",  # Debian (shim-signed)
               "boot/efi/EFI/*/shim{arch}.efi",  # Fedora, CentOS
               "usr/share/efi/*/shim.efi")  # openSUSE
UNSIGNED_SHIM = ("usr/lib/shim/shim{arch}.efi",  # Debian, Ubuntu (shim-unsigned)
                 "usr/share/shim/*/*/shim{arch}.efi",  # Fedora, CentOS
                 "usr/share/shim/shim{arch}.efi")  # Arch
SIGNED_MOK_MANAGER = ("usr/lib/shim/mm{arch}.efi.signed",  # Debian (shim-helpers-<arch>-signed)
                      "usr/lib/shim/mm{arch}.efi",  # Ubuntu
                      "boot/efi/EFI/*/mm{arch}.efi",  # Fedora, CentOS
                      "usr/share/efi/*/MokManager.efi")  # openSUSE
UNSIGNED_MOK_MANAGER = ("usr/lib/shim/mm{arch}.efi",
                        "usr/share/shim/*/*/mm{arch}.efi",
                        "usr/share/shim/mm{arch}.efi")
# Signed grub binaries: what shim=signed starts, and where unsigned grub behind shim takes its SBAT from.
SIGNED_GRUB = ("usr/lib/grub/*-signed/grub{arch}.efi.signed",  # Debian, Ubuntu
               "boot/efi/EFI/*/grub{arch}.efi",  # Fedora, CentOS
               "usr/share/efi/*/grub.efi")  # openSUSE


def in_front(context: Context) -> bool:
    return context.config.shim_bootloader != ShimBootloader.none


def signed(context: Context) -> bool:
    """ShimBootloader=signed: the distribution's signed boot chain, used as it is."""
    return context.config.shim_bootloader == ShimBootloader.signed


def default_loader(context: Context) -> Path:
    """The firmware's default loader, EFI/BOOT/BOOT<ARCH>.EFI (in the root's /efi, see esp.py)."""
    return esp_tree(context) / "EFI/BOOT" / f"BOOT{efi_architecture(context.config).upper()}.EFI"


def second_stage(context: Context) -> Path:
    """The binary shim starts: where the boot loader goes when shim is in front of it."""
    arch = efi_architecture(context.config)
    name = "grub.EFI" if str(context.config.distribution) == "opensuse" else f"grub{arch}.EFI"
    return esp_tree(context) / "EFI/BOOT" / name


def boot_loader_path(context: Context) -> Path:
    """Where the boot loader itself goes: behind shim, or the firmware's default loader."""
    return second_stage(context) if in_front(context) else default_loader(context)


def find(context: Context, patterns: tuple[str, ...]) -> Path | None:
    """The first file matching one of `patterns` in the image; absolute symlinks point at the host, not
    into the image, so they are skipped (with a warning, as v22 does)."""
    arch = efi_architecture(context.config)
    for pattern in patterns:
        for candidate in sorted(context.root.glob(pattern.format(arch=arch))):
            if candidate.is_symlink() and candidate.readlink().is_absolute():
                logger.warning("Ignoring /%s: it is a symlink to the absolute path %s",
                               candidate.relative_to(context.root), candidate.readlink())
                continue
            if candidate.is_file():
                return candidate
    return None


def missing(context: Context, what: str, patterns: tuple[str, ...], package: str) -> None:
    """A Bootable=yes build fails without the binary; Bootable=auto goes on without it."""
    arch = efi_architecture(context.config)
    message = (f"ShimBootloader={context.config.shim_bootloader}: the image has no {what} "
               f"({', '.join('/' + p.format(arch=arch) for p in patterns)}); add {package} to Packages=")
    if context.config.bootable == ConfigFeature.enabled:
        raise BuildError(message)
    logger.warning("%s (Bootable=auto: not installed)", message)


def install_binary(context: Context, source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if context.config.secure_boot and not signed(context):
        sign(context, source, target)
    else:
        shutil.copyfile(source, target)
    logger.info("Installed /%s as /%s", source.relative_to(context.root), target.relative_to(context.root))


def install_shim(context: Context) -> None:
    """shim as BOOT<ARCH>.EFI and MokManager beside it (after the boot loader went to the second stage)."""
    if not in_front(context) or not wants_uefi(context):
        return
    shim_patterns, mok_patterns = ((SIGNED_SHIM, SIGNED_MOK_MANAGER) if signed(context)
                                   else (UNSIGNED_SHIM, UNSIGNED_MOK_MANAGER))
    debian = "shim-signed" if signed(context) else "shim-unsigned"
    shim = find(context, shim_patterns)
    if shim is None:
        missing(context, f"{'signed' if signed(context) else 'unsigned'} shim", shim_patterns, f"{debian} (Debian)")
        return
    install_binary(context, shim, default_loader(context))
    mok = find(context, mok_patterns)
    if mok is None:
        helpers = "shim-helpers-amd64-signed" if signed(context) else "shim-unsigned"
        missing(context, "MokManager", mok_patterns, f"{helpers} (Debian)")
        return
    install_binary(context, mok, default_loader(context).parent / mok.name.removesuffix(".signed"))


def pe_section(binary: Path, name: str) -> bytes | None:
    """The contents of section `name` of a PE binary (what objcopy --dump-section writes), or None."""
    data = binary.read_bytes()
    try:
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        if data[pe:pe + 4] != b"PE\0\0":
            return None
        count, optional_size = struct.unpack_from("<H", data, pe + 6)[0], struct.unpack_from("<H", data, pe + 20)[0]
        table = pe + 24 + optional_size
        for index in range(count):
            entry = table + 40 * index
            if data[entry:entry + 8].rstrip(b"\0").decode(errors="replace") == name:
                virtual_size, _, raw_size, raw_offset = struct.unpack_from("<IIII", data, entry + 8)
                return data[raw_offset:raw_offset + min(virtual_size, raw_size)].rstrip(b"\0")
    except struct.error:
        return None
    return None


def grub_sbat(context: Context) -> Path | None:
    """SBAT metadata for a grub core image that shim is to start under Secure Boot.

    shim refuses a second stage without a .sbat section when Secure Boot is on; grub-mkimage takes it
    from a file (--sbat), and, as in v22, that file is the .sbat of the distribution's signed grub.
    """
    if not in_front(context) or not context.config.secure_boot:
        return None
    grub = find(context, SIGNED_GRUB)
    if grub is None:
        raise BuildError("ShimBootloader= with SecureBoot=yes and Bootloader=grub: shim needs SBAT data in grub, "
                         "taken from the distribution's signed grub, and the image has none; add "
                         "grub-efi-amd64-signed (Debian) to Packages=")
    sbat = pe_section(grub, ".sbat")
    if not sbat:
        raise BuildError(f"/{grub.relative_to(context.root)} has no .sbat section to give grub for shim")
    path = context.workspace / "grub.sbat"
    path.write_bytes(sbat + b"\n" if not sbat.endswith(b"\n") else sbat)
    return path
