"""The disks a qemu boot uses, made in its scratch directory: a Format=directory tree as ext4 (where there is
no virtiofsd), an ephemeral copy or a qcow2 overlay of a disk image (the cached image is never written),
RuntimeSize= growth and QemuDrives= files."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import RunError
from imagebuild.tools.run import find_tool

if TYPE_CHECKING:
    from imagebuild.config import Config


def tree_size(tree: Path) -> int:
    output = subprocess.run(["du", "-sx", "--block-size=1", os.fspath(tree)], capture_output=True, text=True,
                            check=False).stdout
    try:
        return int(output.split()[0])
    except (IndexError, ValueError):
        raise RunError(f"cannot measure the size of {tree}") from None


def tree_to_ext4(tree: Path, target: Path, *, minimum_size: int | None, tools_tree: Path | None) -> None:
    """A Format=directory tree as an ext4 file system qemu can boot from (no mount needed)."""
    from imagebuild.tools.run import run

    size = max(tree_size(tree) * 13 // 10 + (256 << 20), minimum_size or 0)
    with open(target, "wb") as f:
        f.truncate(size)
    mkfs = find_tool("mkfs.ext4", package="e2fsprogs", tools_tree=tools_tree)
    run([mkfs, "-q", "-F", "-L", "root", "-d", tree, target], what="mkfs.ext4", tools_tree=tools_tree)


def scratch_copy(source: Path, target: Path) -> None:
    """A copy for one boot; reflinked where the file system can, sparse elsewhere."""
    result = subprocess.run(["cp", "--reflink=auto", "--sparse=always", os.fspath(source), os.fspath(target)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RunError(f"cannot copy {source} for an ephemeral boot: {result.stderr.strip()}")


def qcow2_overlay(image: Path, overlay: Path, *, size: int | None, tools_tree: Path | None) -> None:
    """A qcow2 file whose unwritten blocks read from `image` (raw), which qemu then opens read-only."""
    from imagebuild.tools.run import run

    qemu_img = find_tool("qemu-img", package="qemu-utils", tools_tree=tools_tree)
    argv: list[str | os.PathLike[str]] = [qemu_img, "create", "-q", "-f", "qcow2", "-F", "raw",
                                          "-b", image.absolute(), overlay]
    if size is not None and size > image.stat().st_size:
        argv.append(str(size))  # RuntimeSize=: a bigger virtual disk the guest's repart can grow into
    run(argv, what="qemu-img create", tools_tree=tools_tree)


def grow(disk: Path, size: int | None) -> None:
    """RuntimeSize=: grow the disk file (the guest's systemd-repart can then grow its partitions)."""
    if size is not None and disk.stat().st_size < size:
        os.truncate(disk, size)


def qemu_drives(config: Config, scratch: Path) -> tuple[list[str], list[Path]]:
    """QemuDrives=: a sparse file per drive (in its directory, else the scratch directory)."""
    args: list[str] = []
    files: list[Path] = []
    for drive in config.qemu_drives:
        directory = Path(drive.directory) if drive.directory else scratch
        fd, name = tempfile.mkstemp(prefix=f"qemu-drive-{drive.id}-", dir=directory)
        os.ftruncate(fd, drive.size)
        os.close(fd)
        files.append(Path(name))
        spec = f"if=none,id={drive.id},file={name},format=raw,cache=unsafe"
        if drive.options:
            spec += f",{drive.options}"
        args += ["-drive", spec]
    return args, files
