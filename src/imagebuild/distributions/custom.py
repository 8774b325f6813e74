"""Distribution=custom: nothing is installed by a package manager.

The image is what BaseTrees=, SkeletonTrees=, ExtraTrees= and the scripts put there; mkosi does the same.
Package lists have nothing to act on, so they are refused instead of silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

HINT = "put the files into BaseTrees=, SkeletonTrees= or ExtraTrees= instead"


def _refuse(setting: str, packages: list[str]) -> None:
    if packages:
        raise BuildError(
            f"{setting}={','.join(packages)}: Distribution=custom has no package manager to install or remove "
            f"packages with; {HINT}"
        )


class Custom:
    name = "custom"

    def check(self, config: Config) -> None:
        """Refuse package lists before any work is done: there is nothing to install them with."""
        _refuse("Packages", list(config.packages))
        _refuse("BuildPackages", list(config.build_packages))
        _refuse("RemovePackages", list(config.remove_packages))

    def install(self, context: Context) -> None:
        _refuse("Packages", list(context.config.packages))
        context.root.mkdir(parents=True, exist_ok=True)

    def install_packages(self, context: Context, packages: list[str], *, root: Path | None = None) -> None:
        _refuse("BuildPackages", packages)

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        _refuse("RemovePackages", packages)


DISTRIBUTION = Custom()
