"""Package manager trees and the repository metadata sync before the image is installed.

PackageManagerTrees= (SkeletonTrees= unless set) are copied into the workspace, not the image; the package
manager reads its configuration (apt.conf.d, sources.list.d, preferences.d, trusted keys ...) from there.
The metadata sync asks the distribution to refresh its repository metadata (or take it from the package
cache, with CacheOnly=), so that installing the image needs no metadata download of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.build.trees import copy_tree
from imagebuild.distributions import distribution_for
from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def package_manager_tree(context: Context) -> Path | None:
    """The merged package manager trees of this build, None when there are none."""
    tree = context.workspace / "pkgmngr"
    return tree if tree.is_dir() else None


def install_package_manager_trees(context: Context) -> None:
    for spec in context.config.package_manager_trees:
        source = Path(spec.source)
        if not source.exists():
            raise BuildError(f"PackageManagerTrees={source}: no such file or directory")
        target = Path(spec.target) if spec.target is not None else Path("/")
        copy_tree(source, context.workspace / "pkgmngr" / target.relative_to("/"))


def sync_repository_metadata(context: Context) -> None:
    """Distributions that keep repository metadata define sync_repository_metadata(context)."""
    sync = getattr(distribution_for(context.config), "sync_repository_metadata", None)
    if sync is not None:
        sync(context)
