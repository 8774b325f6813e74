"""One module per distribution: its releases, repositories, architectures and package manager.

imagebuild.distributions.<name> (mkosi's Distribution= value, '-' as '_') defines DISTRIBUTION, an object
with the methods of the Distribution protocol below.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context


class Distribution(Protocol):
    """What the build needs to know about a distribution."""

    name: str

    def check(self, config: Config) -> None:
        """Refuse what this distribution cannot build (release, architecture, emulation), before any work."""

    def install(self, context: Context) -> None:
        """Install the base system and Packages= into context.root."""

    def install_packages(self, context: Context, packages: list[str], *, root: Path | None = None) -> None:
        """Install more packages once the base system is there (BuildPackages=, mkosi-install).

        root is the tree to install into, context.root unless given (the build overlay's merged view).
        """

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        """Remove packages from the image (RemovePackages=, mkosi-remove)."""


def distribution_for(config: Config) -> Distribution:
    """The implementation of config.distribution, or a clear error for one we cannot build yet."""
    name = str(config.distribution)
    try:
        module = importlib.import_module(f"imagebuild.distributions.{name.replace('-', '_')}")
    except ModuleNotFoundError as e:
        if e.name != f"imagebuild.distributions.{name.replace('-', '_')}":
            raise
        raise BuildError(f"not supported yet: Distribution={name}") from None
    implementation: Distribution = module.DISTRIBUTION
    return implementation
