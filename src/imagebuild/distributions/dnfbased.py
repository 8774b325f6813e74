"""What every distribution installed with dnf shares; each of them says its repositories and names."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import CacheOnly
from imagebuild.installers import dnf
from imagebuild.installers.common import architecture_name, package_manager_dir
from imagebuild.installers.rpm import RpmRepository, check_repositories, repository_ids

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context


class DnfDistribution:
    """A distribution installed with dnf. Subclasses set the class attributes and repositories()."""

    name = ""
    pretty_name = ""
    # mkosi's architecture names → the distribution's ($basearch).
    architectures: dict[str, str] = {}
    # Installed first, on their own, before the API file systems exist: `filesystem` lays out the
    # directory tree (the /usr merge symlinks) that every other package's files go into.
    base_packages: tuple[str, ...] = ("filesystem",)

    def check_release(self, config: Config) -> None:
        """Raise a BuildError for a Release= this distribution does not have."""

    def check(self, config: Config) -> None:
        """Refuse a Release= or Architecture= this distribution does not have, before any work is done."""
        self.check_release(config)
        self.architecture(config)

    def architecture(self, config: Config) -> str:
        return architecture_name(config, self.architectures, self.pretty_name)

    def repositories(self, context: Context) -> list[RpmRepository]:
        raise NotImplementedError

    def dnf_variables(self, config: Config) -> dict[str, str]:
        """Variables the .repo file uses besides $releasever and $basearch."""
        return {}

    def filelists(self, config: Config) -> bool:
        return True

    def after_install(self, context: Context, root: Path) -> None:
        """Fix-ups of the tree after dnf ran."""

    def where(self, config: Config) -> str:
        return f"{self.pretty_name} {config.release} ({self.architecture(config)})"

    def _setup(self, context: Context) -> str:
        config = context.config
        self.check_release(config)
        self.architecture(config)
        repos = self.repositories(context)
        executable = dnf.executable(context)
        dnf.setup(context, repos, dnf=executable, variables=self.dnf_variables(config),
                  filelists=self.filelists(config))
        check_repositories(config, repos, self.pretty_name,
                           repository_ids(package_manager_dir(context) / dnf.REPOS_DIR))
        return executable

    def _dnf(self, context: Context, executable: str, verb: str, packages: list[str], *,
             root: Path | None = None, apivfs: bool = True) -> None:
        config = context.config
        dnf.invoke(context, verb, packages, dnf=executable, architecture=self.architecture(config),
                   where=self.where(config), root=root, apivfs=apivfs)

    def sync_repository_metadata(self, context: Context) -> None:
        """Refresh the metadata before anything is installed; CacheOnly= keeps what the cache has."""
        if context.config.cache_only != CacheOnly.none:
            return
        executable = self._setup(context)
        dnf.makecache(context, dnf=executable, architecture=self.architecture(context.config))

    def install(self, context: Context) -> None:
        executable = self._setup(context)
        config = context.config
        # With base trees the distribution is already there: only Packages= go on top (man page).
        if not config.base_trees:
            self._dnf(context, executable, "install", list(self.base_packages), apivfs=False)
        if config.packages:
            self._dnf(context, executable, "install", list(config.packages))
        self.after_install(context, context.root)

    def install_packages(self, context: Context, packages: list[str], *, root: Path | None = None) -> None:
        if not packages:
            return
        executable = self._setup(context)
        self._dnf(context, executable, "install", packages, root=root)
        self.after_install(context, root or context.root)

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        if not packages:
            return
        executable = self._setup(context)
        self._dnf(context, executable, "remove", packages)
