"""Package manager trees and the repository metadata sync before the image is installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def install_package_manager_trees(context: Context) -> None:
    return None


def sync_repository_metadata(context: Context) -> None:
    return None
