"""RuntimeScratch= under qemu: a large sparse ext4 disk (label "scratch") the guest mounts on /var/tmp.

As in mkosi v22: a 1 TiB sparse file formatted in the boot's scratch directory, attached as one more disk,
mounted through an fstab line (launch/qemu.py adds it to the fstab.extra credential). RuntimeScratch=auto
does not make one here: mkosi v22 did wherever mkfs exists, which would add a mkfs to every boot of every
test machine; say RuntimeScratch=yes to get it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config import ConfigFeature
from imagebuild.tools.run import find_tool, run

if TYPE_CHECKING:
    from imagebuild.config import Config

LABEL = "scratch"
SIZE = 1 << 40
MOUNT_POINT = "/var/tmp"
FSTAB_LINE = f"LABEL={LABEL} {MOUNT_POINT} ext4 defaults 0 0"


def wanted(config: Config) -> bool:
    return config.runtime_scratch == ConfigFeature.enabled


def make_scratch_disk(directory: Path, tools_tree: Path | None) -> Path:
    """The scratch disk in `directory` (one made by an earlier boot there is kept: a machine started again
    after a crash keeps its /var/tmp)."""
    disk = directory / "scratch.ext4"
    if disk.exists():
        return disk
    mkfs = find_tool("mkfs.ext4", package="e2fsprogs", tools_tree=tools_tree)
    partial = directory / "scratch.ext4.partial"
    with open(partial, "wb") as f:
        f.truncate(SIZE)
    # Lazy inode tables and journal: the guest initializes them; the file stays sparse (16 MiB, not 1 GiB).
    run([mkfs, "-q", "-F", "-L", LABEL, "-E", "lazy_itable_init=1,lazy_journal_init=1", partial],
        what="mkfs.ext4 (RuntimeScratch=)", tools_tree=tools_tree)
    os.rename(partial, disk)
    return disk


def qemu_args(disk: Path) -> list[str]:
    return ["-drive", f"if=none,id={LABEL},file={disk},format=raw,cache=unsafe,discard=unmap",
            "-device", f"virtio-blk-pci,drive={LABEL}"]
