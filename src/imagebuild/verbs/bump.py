"""bump: increase the version in mkosi.version (also done after each successful build with -B)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import ImageBuildError
from imagebuild.log import logger

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

VERSION_FILE = "mkosi.version"


def next_version(version: str) -> str:
    """1.2.3 -> 1.2.4; a last component that is not a number gets ".2" appended (1.2rc -> 1.2rc.2)."""
    parts = version.split(".")
    if parts[-1].isdigit():
        parts[-1] = str(int(parts[-1]) + 1)
    else:
        parts.append("2")
    return ".".join(parts)


def current_version(directory: Path) -> str:
    path = directory / VERSION_FILE
    try:
        version = path.read_text().strip()
    except FileNotFoundError:
        raise ImageBuildError(
            f"{path}: no such file; bump and -B increase the version kept there: create it with the "
            f"current version (echo 1 > {path})"
        ) from None
    if not version:
        raise ImageBuildError(f"{path} is empty: write the current image version into it")
    return version


def bump_version_file(directory: Path) -> tuple[str, str]:
    """Rewrite directory/mkosi.version with the next version; return (old, new)."""
    path = directory / VERSION_FILE
    old = current_version(directory)
    new = next_version(old)
    path.write_text(f"{new}\n")
    logger.info("Bumped the image version: %s -> %s (%s)", old, new, path)
    return old, new


def version_directory(args: Args) -> Path:
    return (args.directory or Path.cwd()).absolute()


def run(args: Args, images: list[Config]) -> int:
    bump_version_file(version_directory(args))
    return 0
