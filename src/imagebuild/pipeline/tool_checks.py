"""Tools and keys a build will need, checked before any work so that a build never fails at its last step.

Without this a disk build on a host whose systemd-repart is too old (bookworm's 252) would install the whole
image first and fail only at the repart step. The checks run against where the tools will come from: the
host without ToolsTree=, the given tree with ToolsTree=PATH. ToolsTree=default builds its tree inside the
build, so then they run right after that tree exists, still before the first package is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot.secure_boot import signing_files
from imagebuild.config.enums import Bootloader, ConfigFeature, KeySourceType
from imagebuild.errors import BuildError
from imagebuild.outputs.repart import REPART_MINIMUM_VERSION, default_filesystem, definition_files
from imagebuild.tools.run import find_tool
from imagebuild.tools.tools_tree import require_tool

if TYPE_CHECKING:
    from imagebuild.config import Config

# Formats systemd-repart writes.
REPART_FORMATS = ("disk", "esp", "sysext", "confext", "portable")

# File system (repart's Format=) → the programs repart runs to make it, and their Debian package.
MKFS_TOOLS: dict[str, tuple[tuple[str, str], ...]] = {
    "ext4": (("mkfs.ext4", "e2fsprogs"),),
    "ext2": (("mkfs.ext2", "e2fsprogs"),),
    "ext3": (("mkfs.ext3", "e2fsprogs"),),
    "xfs": (("mkfs.xfs", "xfsprogs"),),
    "btrfs": (("mkfs.btrfs", "btrfs-progs"),),
    # repart fills vfat without mounting it, through mtools.
    "vfat": (("mkfs.vfat", "dosfstools"), ("mcopy", "mtools")),
    "erofs": (("mkfs.erofs", "erofs-utils"),),
    "squashfs": (("mksquashfs", "squashfs-tools"),),
    "swap": (("mkswap", "util-linux"),),
}


def partition_filesystems(config: Config) -> set[str]:
    """The file systems repart will make, as far as the config tells before the image exists."""
    fmt = str(config.format)
    if fmt in ("sysext", "confext", "portable"):
        return {"erofs"}
    if fmt == "esp":
        return {"vfat"}
    if fmt != "disk":
        return set()
    if config.repart_directories:
        found: set[str] = set()
        for file in definition_files([Path(d) for d in config.repart_directories]):
            for line in file.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip() == "Format":
                    found.add(value.strip())
        return found
    # The default definitions: the root, and an ESP when the image is surely bootable (with
    # Bootable=auto that is only known once the boot loader is in the image).
    filesystems = {default_filesystem(config)}
    if str(config.bootable) == "enabled":
        filesystems.add("vfat")
    return filesystems


def needs_ukify(config: Config) -> bool:
    fmt = str(config.format)
    return (fmt in ("uki", "esp") or config.bootloader == Bootloader.uki
            or config.unified_kernel_images == ConfigFeature.enabled)


def check_build_tools(config: Config, tools_tree: Path | None) -> None:
    """Every tool (and version) the stages of this config will run, looked up in tools_tree or on the host."""
    if str(config.format) in REPART_FORMATS:
        require_tool(tools_tree, "systemd-repart", minimum_version=REPART_MINIMUM_VERSION, package="systemd-repart")
    for filesystem in sorted(partition_filesystems(config)):
        for program, package in MKFS_TOOLS.get(filesystem, ()):
            require_tool(tools_tree, program, package=package)
    if needs_ukify(config):
        require_tool(tools_tree, "ukify", package="systemd-ukify")
    if config.secure_boot:
        require_tool(tools_tree, "sbsign", package="sbsigntool")
    if config.selinux_relabel == ConfigFeature.enabled:
        require_tool(tools_tree, "setfiles", package="policycoreutils")


def check_keys(config: Config) -> None:
    """Key files the signing steps read, and the host's gpg for Sign=."""
    if config.secure_boot:
        signing_files(config)
    for setting, path in (("VerityKey", config.verity_key), ("VerityCertificate", config.verity_certificate)):
        # With VerityKeySource=engine the key is a name the engine understands, not a file.
        if path is not None and config.verity_key_source.type == KeySourceType.file and not Path(path).exists():
            raise BuildError(f"{setting}={path}: no such file (imagebuild genkey makes mkosi.key and mkosi.crt)")
    if config.sign:
        find_tool("gpg", package="gpg")


def preflight(config: Config) -> None:
    """The checks that can run before the build starts (see the module's docstring for ToolsTree=default)."""
    check_keys(config)
    if config.tools_tree is None:
        check_build_tools(config, None)
    elif config.tools_tree != "default":
        tree = Path(config.tools_tree)
        if (tree / "usr/bin").is_dir():
            check_build_tools(config, tree.absolute())


def after_default_tools_tree(config: Config, tools_tree: Path | None) -> None:
    """With ToolsTree=default the checks run once the tree exists, before the build's first stage."""
    if config.tools_tree == "default":
        check_build_tools(config, tools_tree)
