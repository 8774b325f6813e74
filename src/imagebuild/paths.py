"""Where things go when the config does not say: caches, workspaces, outputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.config import Config


def user_cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def package_cache_directory(config: Config) -> Path:
    """PackageCacheDirectory=, else CacheDirectory=, else a per-user cache shared by all projects."""
    if config.package_cache_directory is not None:
        return Path(config.package_cache_directory)
    if config.cache_directory is not None:
        return Path(config.cache_directory) / "packages"
    return user_cache_home() / "imagebuild" / "packages"


def incremental_cache_prefix(config: Config) -> Path | None:
    """CacheDirectory=/<image~>distribution~release~architecture: Incremental='s cached image is this
    plus .cache (the root), .build.cache (the build overlay) and .json (what it was built from).
    None without a cache directory."""
    if config.cache_directory is None:
        return None
    image = f"{config.image}~" if config.image else ""
    return Path(config.cache_directory) / f"{image}{config.distribution}~{config.release}~{config.architecture}"


def output_directory(config: Config) -> Path:
    """OutputDirectory=, else mkosi.output/ beside the configuration."""
    if config.output_directory is not None:
        return Path(config.output_directory)
    return Path(config.directory) / "mkosi.output"


def workspace_parent(config: Config) -> Path:
    """WorkspaceDirectory=, else /var/tmp (disk-backed: images can be larger than memory)."""
    if config.workspace_directory is not None:
        return Path(config.workspace_directory)
    return Path("/var/tmp")
