"""The partition definitions used when the config brings none: the man page's defaults, and the extensions'.

Format=disk without mkosi.repart/ or RepartDirectories= gets 00-esp.conf (bootable images), 05-bios.conf
(BiosBootloader=grub) and 10-root.conf, exactly as the man page lists them. Format=sysext, confext and
portable get an erofs root partition with its verity hash partition, plus a verity signature partition
when VerityKey= and VerityCertificate= are set.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.log import logger
from imagebuild.outputs.repart import BIOS_BOOT_PARTITION_TYPE, default_filesystem, efi_architecture

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

ESP = """\
[Partition]
Type=esp
Format=vfat
CopyFiles=/boot:/
CopyFiles=/efi:/
SizeMinBytes=512M
SizeMaxBytes=512M
"""

BIOS = f"""\
[Partition]
# UUID of the grub BIOS boot partition which grubs needs on GPT to
# embed itself into.
Type={BIOS_BOOT_PARTITION_TYPE}
SizeMinBytes=1M
SizeMaxBytes=1M
"""

ROOT = """\
[Partition]
Type=root
Format={filesystem}
CopyFiles=/
Minimize=guess
"""

# What each extension format copies from the image into its root partition.
EXTENSION_SOURCES = {"sysext": ("/opt", "/usr"), "confext": ("/etc",), "portable": ("/",)}

EXTENSION_ROOT = """\
[Partition]
Type=root
Format=erofs
{copy_files}Verity=data
VerityMatchKey=root
Minimize=best
"""

EXTENSION_VERITY = """\
[Partition]
Type=root-verity
Verity=hash
VerityMatchKey=root
Minimize=best
"""

EXTENSION_SIGNATURE = """\
[Partition]
Type=root-verity-sig
Verity=signature
VerityMatchKey=root
"""


def wants_esp(context: Context) -> bool:
    """Bootable=yes, or Bootable=auto and the boot chain installs an EFI boot loader or UKI in the image.

    Asked before the UKIs exist (first repart pass), so the boot chain's own decision counts too.
    """
    from imagebuild.boot.esp import wants_uefi

    config = context.config
    bootable = str(config.bootable)
    if bootable == "enabled":
        return True
    if bootable == "disabled":
        return False
    arch = efi_architecture(config)
    if arch is not None and (context.root / "efi" / "EFI" / "BOOT" / f"BOOT{arch.upper()}.EFI").exists():
        return True
    return wants_uefi(context)


def wants_bios_partition(config: Config) -> bool:
    return str(config.bootable) != "disabled" and str(config.bios_bootloader) == "grub"


def default_disk_definitions(context: Context) -> dict[str, str]:
    """File name → contents of the man page's default definitions for this build."""
    config = context.config
    files: dict[str, str] = {}
    bios = wants_bios_partition(config)
    if bios or wants_esp(context):
        # BIOS boot keeps kernels, initrds and grub's modules on the ESP too.
        files["00-esp.conf"] = ESP
    if bios:
        files["05-bios.conf"] = BIOS
    files["10-root.conf"] = ROOT.format(filesystem=default_filesystem(config))
    return files


def extension_definitions(config: Config) -> dict[str, str]:
    fmt = str(config.format)
    copy_files = "".join(f"CopyFiles={source}\n" for source in EXTENSION_SOURCES[fmt])
    files = {
        "10-root.conf": EXTENSION_ROOT.format(copy_files=copy_files),
        "20-root-verity.conf": EXTENSION_VERITY,
    }
    if config.verity_key is not None and config.verity_certificate is not None:
        files["30-root-verity-sig.conf"] = EXTENSION_SIGNATURE
    else:
        logger.info("Format=%s: no VerityKey=/VerityCertificate= (imagebuild genkey creates them), so the "
                    "image has no verity signature partition", fmt)
    return files


def write_definitions(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def disk_definition_directories(context: Context) -> list[Path]:
    """RepartDirectories= (mkosi.repart/ included) if given, else the defaults written into the workspace.

    Either replaces the other wholly, as the man page says.
    """
    config = context.config
    if config.repart_directories:
        return [Path(d) for d in config.repart_directories]
    directory = context.workspace / "repart-definitions"
    return [write_definitions(directory, default_disk_definitions(context))]
