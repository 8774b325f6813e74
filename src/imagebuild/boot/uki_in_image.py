"""The unified kernel images inside a built disk image's ESP, read without mounting anything.

Why not a split copy beside the image: mkosi v22's SplitArtifacts= means systemd-repart's --split (one
file per partition), not a copy of the UKI, so an `<Output>.efi` would be a setting v22 does not have; and
reading the ESP gives the very bytes the firmware will load. The host kernel has no vfat (and must not
mount images anyway), so the GPT is read here and the vfat file system by mtools (`mcopy -i image@@offset`),
which works on the image file in userspace.
"""

from __future__ import annotations

import struct
import subprocess
import uuid
from pathlib import Path

from imagebuild.errors import ImageBuildError
from imagebuild.tools.run import find_tool, tools_tree_wrapper

ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
UKI_DIRECTORY = "::/EFI/Linux"
SECTOR_SIZES = (512, 4096)


class UkiNotFound(ImageBuildError):
    pass


def esp_offset(image: Path) -> int:
    """The byte offset of the first EFI System Partition in a GPT disk image (512 or 4096-byte sectors)."""
    with open(image, "rb") as f:
        for sector in SECTOR_SIZES:
            f.seek(sector)
            header = f.read(92)
            if header[:8] != b"EFI PART":
                continue
            entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
            f.seek(entries_lba * sector)
            table = f.read(count * entry_size)
            for i in range(count):
                entry = table[i * entry_size:(i + 1) * entry_size]
                if len(entry) >= 48 and uuid.UUID(bytes_le=entry[:16]) == ESP_TYPE:
                    return int(struct.unpack_from("<Q", entry, 32)[0]) * sector
            raise UkiNotFound(f"{image}: its partition table has no EFI System Partition (so no UKI to read)")
    raise UkiNotFound(f"{image}: not a GPT disk image")


def _mtools(tool: str, image: Path, offset: int, *args: str, tools_tree: Path | None
            ) -> subprocess.CompletedProcess[str]:
    """An mtools command on the vfat at `offset` of `image` (from the tools tree when there is one)."""
    path = find_tool(tool, package="mtools", tools_tree=tools_tree)
    wrapper = tools_tree_wrapper(tools_tree) if tools_tree is not None else []
    # MTOOLS_SKIP_CHECK: repart's vfat has geometry fields mtools would otherwise complain about.
    return subprocess.run([*wrapper, path, "-i", f"{image}@@{offset}", *args], capture_output=True, text=True,
                          check=False, env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})


def list_ukis(image: Path, *, tools_tree: Path | None = None) -> list[str]:
    """The file names in the ESP's /EFI/Linux that end in .efi (Boot Loader Specification type #2 entries)."""
    result = _mtools("mdir", image, esp_offset(image), "-b", UKI_DIRECTORY, tools_tree=tools_tree)
    if result.returncode != 0:
        raise UkiNotFound(f"{image}: the ESP has no /EFI/Linux directory ({result.stderr.strip() or 'mdir failed'})")
    return sorted(line.rsplit("/", 1)[-1] for line in result.stdout.splitlines() if line.lower().endswith(".efi"))


def extract_uki(image: Path, target_directory: Path, *, tools_tree: Path | None = None) -> Path:
    """Copy the image's UKI out of its ESP into `target_directory`; error when there is none or several."""
    names = list_ukis(image, tools_tree=tools_tree)
    if not names:
        raise UkiNotFound(f"{image}: no UKI in the ESP's /EFI/Linux (is the image Bootable= with a UKI?)")
    if len(names) > 1:
        raise UkiNotFound(f"{image}: several UKIs in /EFI/Linux ({', '.join(names)}): which one boots depends "
                          "on the boot loader's choice; predict from one of them explicitly")
    target = target_directory / names[0]
    result = _mtools("mcopy", image, esp_offset(image), "-n", f"{UKI_DIRECTORY}/{names[0]}", str(target),
                    tools_tree=tools_tree)
    if result.returncode != 0:
        raise UkiNotFound(f"{image}: cannot copy {names[0]} out of the ESP: {result.stderr.strip()}")
    return target
