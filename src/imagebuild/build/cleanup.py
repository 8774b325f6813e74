"""RemovePackages=, RemoveFiles= and CleanPackageMetadata=."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def remove_packages_and_files(context: Context) -> None:
    return None
