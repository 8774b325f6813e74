"""One module per distribution: its releases, repositories, architectures and package manager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.build.context import Context
    from imagebuild.config import Config


class Distribution(Protocol):
    """What the build needs to know about a distribution."""

    name: str

    def install(self, context: Context) -> None:
        """Install the base system and Packages= into context.root."""

    def install_packages(self, context: Context, packages: list[str]) -> None:
        """Install more packages into the image once the base system is there (BuildPackages=, mkosi-install)."""

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        """Remove packages from the image (RemovePackages=, mkosi-remove)."""


def distribution_for(config: Config) -> Distribution:
    """The implementation of config.distribution, or a clear error for one we cannot build yet."""
    from imagebuild.distributions import debian

    implementations: dict[str, Distribution] = {"debian": debian.Debian()}
    name = str(config.distribution)
    try:
        return implementations[name]
    except KeyError:
        raise BuildError(
            f"not supported yet: Distribution={name} (this version of imagebuild builds: "
            f"{', '.join(sorted(implementations))})"
        ) from None
