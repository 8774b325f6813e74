"""RemovePackages=, RemoveFiles= and CleanPackageMetadata= (step 25 of the execution flow)."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import ConfigFeature
from imagebuild.distributions import distribution_for
from imagebuild.log import logger
from imagebuild.pipeline.image_sandbox import image_has_program, image_path

if TYPE_CHECKING:
    from imagebuild.context import Context

# Each package manager's program and the databases and repository metadata it leaves in the image.
PACKAGE_MANAGER_METADATA: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dpkg", ("var/lib/dpkg",)),
    ("apt", ("var/lib/apt", "var/cache/apt")),
    ("rpm", ("var/lib/rpm", "usr/lib/sysimage/rpm")),
    ("dnf", ("var/lib/dnf", "var/cache/dnf")),
    ("dnf5", ("usr/lib/sysimage/libdnf5", "var/cache/libdnf5")),
    ("pacman", ("var/lib/pacman", "var/cache/pacman")),
    ("zypper", ("var/lib/zypp", "var/cache/zypp")),
)


def remove_packages(context: Context) -> None:
    packages = context.config.remove_packages
    if not packages:
        return
    if context.config.clean_package_metadata == ConfigFeature.disabled:
        # As the man page has it: "This step is skipped if CleanPackageMetadata=no is used."
        logger.warning("RemovePackages= is skipped because CleanPackageMetadata=no (see the man page)")
        return
    distribution_for(context.config).remove_packages(context, list(packages))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def matching_paths(root: Path, pattern: str) -> list[Path]:
    """The paths in the image that match a RemoveFiles= glob (relative to the image's root).

    Each match is located again by following symlinks the way the image would see them, so an absolute
    symlink in the image (/var/run -> /run) can never make us remove a file of the host.
    """
    relative = pattern.strip().lstrip("/")
    if not relative:
        return []
    found: list[Path] = []
    for match in sorted(glob.glob(relative, root_dir=root, recursive=True, include_hidden=True)):
        parent, _, name = match.rstrip("/").rpartition("/")
        if name in ("", ".", ".."):
            continue
        directory = image_path(root, parent) if parent else root
        if directory is None:
            continue
        target = directory / name
        if target.is_symlink() or target.exists():
            found.append(target)
    return found


def remove_files(context: Context) -> None:
    root = context.root
    for pattern in context.config.remove_files:
        matches = matching_paths(root, pattern)
        if not matches:
            logger.info("RemoveFiles=%s matches nothing in the image", pattern)
        for path in matches:
            # A match inside a directory removed just before is already gone.
            if path.is_symlink() or path.exists():
                _remove(path)


def metadata_to_clean(root: Path, setting: ConfigFeature) -> list[Path]:
    """The package manager metadata CleanPackageMetadata= removes: all with yes, with auto only that of
    package managers whose program is no longer in the image."""
    if setting == ConfigFeature.disabled:
        return []
    paths = []
    for program, locations in PACKAGE_MANAGER_METADATA:
        if setting == ConfigFeature.auto and image_has_program(root, program):
            continue
        for location in locations:
            path = image_path(root, location)
            if path is not None:
                paths.append(path)
    return paths


def clean_package_metadata(context: Context) -> None:
    paths = metadata_to_clean(context.root, context.config.clean_package_metadata)
    for path in paths:
        _remove(path)
    if paths:
        logger.info("removed package manager metadata: %s",
                    ", ".join("/" + os.path.relpath(p, context.root) for p in paths))


def remove_packages_and_files(context: Context) -> None:
    remove_packages(context)
    remove_files(context)
    clean_package_metadata(context)
