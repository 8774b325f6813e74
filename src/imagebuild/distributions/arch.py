"""Arch Linux: the rolling release, core and extra (and their testing repositories) through pacman."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.installers import pacman
from imagebuild.installers.common import architecture_name
from imagebuild.installers.pacman import PacmanRepository

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

# The man page's default mirrors: Arch Linux ARM serves arm64, with another path layout.
DEFAULT_MIRROR = "https://geo.mirror.pkgbuild.com"
DEFAULT_ARM_MIRROR = "http://mirror.archlinuxarm.org"
# Repositories= can add these; they go before core and extra so that their packages win.
OPTIONAL_REPOSITORIES = (
    "core-testing", "core-testing-debug", "extra-testing", "extra-testing-debug", "core-debug", "extra-debug",
)
ARCHITECTURES = {"x86-64": "x86_64", "arm64": "aarch64"}


class Arch:
    name = "arch"
    pretty_name = "Arch Linux"

    def architecture(self, config: Config) -> str:
        return architecture_name(config, ARCHITECTURES, self.pretty_name)

    def check_release(self, config: Config) -> None:
        if config.release != "rolling":
            raise BuildError(f"Release={config.release}: Arch Linux has only one release, rolling")

    def check(self, config: Config) -> None:
        """Refuse a Release=, Architecture= or Repositories= Arch Linux does not have, before any work is done."""
        self.check_release(config)
        self.architecture(config)
        self.repositories(config)

    def repositories(self, config: Config) -> list[PacmanRepository]:
        if config.local_mirror:
            return [PacmanRepository("core", config.local_mirror)]
        unknown = [r for r in config.repositories if r not in OPTIONAL_REPOSITORIES]
        if unknown:
            raise BuildError(
                f"Repositories={','.join(unknown)}: no such Arch Linux repository (core and extra are always "
                f"enabled; others: {', '.join(OPTIONAL_REPOSITORIES)})"
            )
        if config.architecture == "arm64":
            server = f"{(config.mirror or DEFAULT_ARM_MIRROR).rstrip('/')}/$arch/$repo"
        else:
            server = f"{(config.mirror or DEFAULT_MIRROR).rstrip('/')}/$repo/os/$arch"
        names = [r for r in OPTIONAL_REPOSITORIES if r in config.repositories] + ["core", "extra"]
        return [PacmanRepository(name, server) for name in names]

    def _setup(self, context: Context) -> str:
        config = context.config
        self.check_release(config)
        executable = pacman.executable(context)
        pacman.setup(context, self.repositories(config), architecture=self.architecture(config))
        return executable

    def _sync(self, context: Context, executable: str, packages: list[str], *, root: Path | None = None,
              apivfs: bool = True) -> None:
        config = context.config
        architecture = self.architecture(config)
        # Images get a prebuilt initrd (or none): no initramfs generator needs to come with the kernel.
        pacman.invoke(context, "--sync", ["--needed", "--assume-installed", "initramfs"], packages,
                      pacman=executable, architecture=architecture, root=root, apivfs=apivfs,
                      where=f"{self.pretty_name} ({architecture})")

    def install(self, context: Context) -> None:
        executable = self._setup(context)
        config = context.config
        if not config.base_trees:
            self._sync(context, executable, ["filesystem"], apivfs=False)
        if config.packages:
            self._sync(context, executable, list(config.packages))

    def install_packages(self, context: Context, packages: list[str], *, root: Path | None = None) -> None:
        if packages:
            self._sync(context, self._setup(context), packages, root=root)

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        if not packages:
            return
        executable = self._setup(context)
        architecture = self.architecture(context.config)
        pacman.invoke(context, "--remove", ["--nosave", "--recursive"], packages, pacman=executable,
                      architecture=architecture, where=f"{self.pretty_name} ({architecture})")


DISTRIBUTION = Arch()
