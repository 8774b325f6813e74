"""Package manager trees and the repository metadata sync before the image is installed.

PackageManagerTrees= (SkeletonTrees= unless set) are copied into the workspace, not the image; the package
manager reads its configuration (apt.conf.d, sources.list.d, preferences.d, trusted keys ...) from there.
The metadata sync asks the distribution to refresh its repository metadata (or take it from the package
cache, with CacheOnly=), so that installing the image needs no metadata download of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.distributions import distribution_for
from imagebuild.errors import BuildError
from imagebuild.pipeline.trees import copy_tree

if TYPE_CHECKING:
    from imagebuild.context import Context


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
