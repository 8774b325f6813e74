"""burn: write the disk image to a block device (or an image file), building it first if needed.

The partitions are copied as they are; systemd-repart writes a new GPT fitted to the target's sector size
(--copy-from). A target that is mounted (the device, one of its partitions, or a file behind a mounted
loop device) is refused.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.errors import ImageBuildError
from imagebuild.outputs import naming
from imagebuild.outputs.repart import DEFAULT_SECTOR_SIZE, REPART_MINIMUM_VERSION
from imagebuild.pipeline.subbuilds import tools_tree_for
from imagebuild.tools.tools_tree import require_tool, run_tool
from imagebuild.verbs import build_if_needed, main_image, need_root

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

BURNABLE_FORMATS = ("disk", "esp")


def _device_numbers(device: Path) -> set[tuple[int, int]]:
    """The device's own major:minor and those of its partitions."""
    rdev = os.stat(device).st_rdev
    numbers = {(os.major(rdev), os.minor(rdev))}
    sysfs = Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")
    if sysfs.is_dir():
        for child in sysfs.iterdir():
            dev = child / "dev"
            if (child / "partition").exists() and dev.exists():
                major, minor = dev.read_text().strip().split(":")
                numbers.add((int(major), int(minor)))
    return numbers


def _mounted_numbers(mountinfo: str) -> dict[tuple[int, int], str]:
    """major:minor → mount point of every mounted file system (/proc/self/mountinfo)."""
    mounted: dict[tuple[int, int], str] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and ":" in fields[2]:
            major, minor = fields[2].split(":")
            mounted.setdefault((int(major), int(minor)), fields[4])
    return mounted


def _loop_devices_of(file: Path) -> list[Path]:
    """The loop devices whose backing file is `file`."""
    found: list[Path] = []
    resolved = os.fspath(file.resolve())
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if backing.read_text().strip().removesuffix(" (deleted)") == resolved:
                found.append(Path("/dev") / backing.parent.parent.name)
        except OSError:
            continue
    return found


def check_not_mounted(target: Path, mountinfo: str | None = None) -> None:
    """Refuse a target that is in use by a mounted file system."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    mounted = _mounted_numbers(mountinfo)
    devices = [target] if target.exists() and stat.S_ISBLK(target.stat().st_mode) else []
    if target.exists() and stat.S_ISREG(target.stat().st_mode):
        devices = [d for d in _loop_devices_of(target) if d.exists()]
    for device in devices:
        for number in sorted(_device_numbers(device)):
            if number in mounted:
                raise ImageBuildError(
                    f"burn: {target} is mounted (at {mounted[number]}); unmount it first"
                )


def image_to_burn(config: Config) -> Path:
    fmt = str(config.format)
    if fmt not in BURNABLE_FORMATS:
        raise ImageBuildError(f"burn: Format={fmt} is not a disk image; burn writes Format=disk or Format=esp")
    if naming.is_compressed(config):
        raise ImageBuildError(
            f"burn: the image is compressed (CompressOutput={config.compress_output}); build it with "
            "CompressOutput=no to burn it"
        )
    return paths.output_directory(config) / naming.uncompressed_name(config)


def _target(args: Args) -> Path:
    if len(args.cmdline) != 1:
        raise ImageBuildError("burn: name one target device or file: imagebuild burn /dev/sdX")
    target = Path(args.cmdline[0]).absolute()
    if target.is_dir():
        raise ImageBuildError(f"burn: {target} is a directory, not a block device or image file")
    return target


def run(args: Args, images: list[Config]) -> int:
    need_root(args.verb)
    config = main_image(images)
    target = _target(args)
    image = image_to_burn(config)
    check_not_mounted(target)
    build_if_needed(args, images)
    if not image.is_file():
        raise ImageBuildError(f"burn: {image} does not exist; build the image first")
    if target.exists() and target.resolve() == image.resolve():
        raise ImageBuildError(f"burn: {target} is the image itself")
    is_block = target.exists() and stat.S_ISBLK(target.stat().st_mode)
    tools = tools_tree_for(config)
    repart = require_tool(tools, "systemd-repart", minimum_version=REPART_MINIMUM_VERSION, package="systemd-repart")
    argv = [repart, "--no-pager", "--dry-run=no", "--offline=yes", "--empty=force", f"--copy-from={image}"]
    if not is_block:
        # A file target is made at least as large as the image (it is sparse).
        size = image.stat().st_size
        with open(target, "ab") as f:
            if f.tell() < size:
                f.truncate(size)
        argv.append(f"--sector-size={config.sector_size or DEFAULT_SECTOR_SIZE}")
    with tempfile.TemporaryDirectory(prefix="imagebuild-burn-") as empty:
        # No definitions of the host's (/etc/repart.d ...): only the copied partitions.
        run_tool(tools, [*argv, f"--definitions={empty}", os.fspath(target)], what="systemd-repart (burn)")
    print(f"Wrote {image} to {target}")
    return 0
