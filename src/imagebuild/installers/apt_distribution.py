"""What every apt-based distribution does the same way; a subclass only says where its packages come from."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.installers import apt, apt_get

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context


class AptDistribution:
    """The Distribution protocol (distributions/__init__.py) on top of mmdebstrap and the host's apt-get."""

    name = "apt"

    def apt_setup(self, context: Context) -> apt.AptSetup:
        """Suites, architecture and repositories of this build; see installers/apt.AptSetup."""
        raise NotImplementedError

    def architecture(self, config: Config) -> str:
        """The distribution's name for config's Architecture= (amd64, arm64, ...)."""
        raise NotImplementedError

    def check(self, config: Config) -> None:
        """A foreign architecture needs what mmdebstrap needs for it: arch-test and a qemu-user handler."""
        apt.check_foreign_architecture(self.architecture(config))

    def keyring(self, context: Context) -> Path | None:
        """Trusted keys: the host's, plus those of the package manager trees."""
        return apt.keyring_directory(context.package_manager_tree(), context.workspace)

    def sync_repository_metadata(self, context: Context) -> None:
        apt_get.sync_lists(context, self.apt_setup(context), package_manager_tree=context.package_manager_tree(),
                           keyring=self.keyring(context))

    def repository_metadata_digest(self, context: Context) -> str:
        """A digest of the repository lists the metadata sync fetched (the install cache's key).

        The Release files are enough: they hold the checksums of every index, so a new package version
        in the archive changes them.
        """
        lists = apt_get.AptWorkspace.of(context, self.apt_setup(context)).lists
        digest = hashlib.sha256()
        for path in sorted(lists.iterdir()) if lists.is_dir() else []:
            if path.is_file() and path.name.endswith(("Release", "InRelease")):
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def install(self, context: Context) -> None:
        setup = self.apt_setup(context)
        tree, keyring = context.package_manager_tree(), self.keyring(context)
        if context.config.base_trees:
            # The base trees are an installed system (mmdebstrap would bootstrap over it and fail):
            # as in mkosi v22, only Packages= go on top, and apt installs just those still missing.
            if not (context.root / "var/lib/dpkg/status").exists():
                raise BuildError(
                    "BaseTrees=: the base trees hold no dpkg database (/var/lib/dpkg/status), so packages "
                    "cannot be installed on top; build the base image with CleanPackageMetadata=no"
                )
            apt_get.install(context, setup, context.root, list(context.config.packages),
                            package_manager_tree=tree, keyring=keyring)
            return
        work = apt_get.AptWorkspace.of(context, setup)
        if not work.synced:
            apt_get.sync_lists(context, setup, package_manager_tree=tree, keyring=keyring)
        apt.bootstrap(context, setup, packages=list(context.config.packages), lists=work.lists,
                      package_manager_tree=tree, keyring=keyring)

    def install_packages(self, context: Context, packages: list[str], *, root: Path | None = None) -> None:
        apt_get.install(context, self.apt_setup(context), root or context.root, packages,
                        package_manager_tree=context.package_manager_tree(), keyring=self.keyring(context))

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        apt_get.remove(context, self.apt_setup(context), context.root, packages)
