"""Format=esp: the Format=uki UKI, wrapped in a disk image whose only partition is an ESP.

The UKI (made by outputs/uki.py, the boot chain's) becomes EFI/BOOT/BOOT<ARCH>.EFI, so firmware boots it
without a boot loader. Both the UKI and the disk image are artifacts, the disk image first.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.outputs import naming
from imagebuild.outputs.partitions import write_definitions
from imagebuild.outputs.repart import DEFAULT_SECTOR_SIZE, efi_architecture, run_repart, save_partitions_json

if TYPE_CHECKING:
    from imagebuild.context import Context

MIB = 1024 * 1024

# Below this size mkfs.vfat makes FAT16 (too few clusters for FAT32), which OVMF refuses to boot from;
# the limit grows with the sector size.
MINIMUM_ESP_MIB = {512: 36}
MINIMUM_ESP_MIB_LARGE_SECTORS = 260
# Room for the file system's own metadata.
METADATA_MIB = 10


def esp_size(uki_size: int, sector_size: int) -> int:
    minimum = MINIMUM_ESP_MIB.get(sector_size, MINIMUM_ESP_MIB_LARGE_SECTORS)
    return max(uki_size, (minimum - METADATA_MIB) * MIB) + METADATA_MIB * MIB


def esp_definition(arch: str, size: int) -> str:
    # CopyFiles= sources are relative to --root: the ESP tree esp_tree() assembles.
    loader = f"/EFI/BOOT/BOOT{arch.upper()}.EFI"
    return (
        "[Partition]\n"
        "Type=esp\n"
        "Format=vfat\n"
        f"CopyFiles={loader}:{loader}\n"
        f"SizeMinBytes={size}\n"
        f"SizeMaxBytes={size}\n"
    )


def esp_tree(context: Context, uki: Path, arch: str) -> Path:
    """A tree with only the UKI as the firmware's default boot loader, for repart's --root."""
    tree = context.workspace / "esp-tree"
    loader = tree / "EFI" / "BOOT" / f"BOOT{arch.upper()}.EFI"
    loader.parent.mkdir(parents=True, exist_ok=True)
    loader.unlink(missing_ok=True)
    os.link(uki, loader)
    return tree


def _make_uki(context: Context) -> Path:
    try:
        uki_output = importlib.import_module("imagebuild.outputs.uki")
    except ModuleNotFoundError:
        raise BuildError("not supported yet: Format=esp (it needs Format=uki, which this version lacks)") from None
    artifacts: list[Path] = uki_output.produce(context)
    return artifacts[0]


def produce(context: Context) -> list[Path]:
    config = context.config
    arch = efi_architecture(config)
    if arch is None:
        raise BuildError(f"Format=esp: Architecture={config.architecture} has no UEFI boot support")
    uki = _make_uki(context)
    image = context.staging / naming.uncompressed_name(config)
    if uki == image:
        # Format=uki names its file after the format; beside the ESP image the UKI is <Output>.efi.
        uki = uki.rename(context.staging / f"{config.output}.efi")
    sector_size = config.sector_size or DEFAULT_SECTOR_SIZE
    tree = esp_tree(context, uki, arch)
    directory = write_definitions(
        context.workspace / "esp-definitions",
        {"00-esp.conf": esp_definition(arch, esp_size(uki.stat().st_size, sector_size))},
    )
    partitions = run_repart(context, image, [directory], create=True, root=tree, what="systemd-repart (ESP image)")
    save_partitions_json(context, partitions)
    return [image, uki]
