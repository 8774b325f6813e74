"""openSUSE: Tumbleweed or a Leap release, with zypper (or dnf when the host has no zypper)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import CacheOnly
from imagebuild.distributions.dnfbased import DnfDistribution
from imagebuild.errors import BuildError
from imagebuild.installers import dnf, zypper
from imagebuild.installers.common import package_manager_dir
from imagebuild.installers.rpm import RpmRepository, check_repositories, find_gpgkey, join_mirror, repository_ids

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

DEFAULT_MIRROR = "http://download.opensuse.org"
GPG_KEYS = ("RPM-GPG-KEY-openSUSE-Tumbleweed", "RPM-GPG-KEY-openSUSE")


class OpenSUSE(DnfDistribution):
    name = "opensuse"
    pretty_name = "openSUSE"
    architectures = {"x86-64": "x86_64", "arm64": "aarch64"}

    def check_release(self, config: Config) -> None:
        if not (config.release == "tumbleweed" or re.fullmatch(r"[0-9]+\.[0-9]+", config.release)):
            raise BuildError(
                f"Release={config.release} is not an openSUSE release (tumbleweed, or a Leap version such as 15.5)"
            )

    def gpgurls(self, context: Context, url: str) -> tuple[str, ...]:
        """The distribution's keys where the host has them, else the key published beside the repository."""
        found = tuple(k for key in GPG_KEYS if (k := find_gpgkey(context, key, None)))
        return found or (f"{url}/repodata/repomd.xml.key",)

    def repositories(self, context: Context) -> list[RpmRepository]:
        config = context.config
        if config.local_mirror:
            return [RpmRepository("local-mirror", f"baseurl={config.local_mirror}",
                                  self.gpgurls(context, config.local_mirror))]
        mirror = config.mirror or DEFAULT_MIRROR
        arch = self.architecture(config)
        # Other architectures than x86-64 are in the ports tree.
        ports = "" if arch == "x86_64" else f"ports/{arch}/"
        repos: list[RpmRepository] = []

        def add(repo_id: str, path: str, enabled: bool) -> None:
            url = join_mirror(mirror, f"{ports}{path}")
            repos.append(RpmRepository(repo_id, f"baseurl={url}", self.gpgurls(context, url), enabled=enabled))

        if config.release == "tumbleweed":
            for repo in ("oss", "non-oss"):
                add(repo, f"tumbleweed/repo/{repo}", repo == "oss")
                for kind in ("debug", "source"):
                    add(f"{repo}-{kind}", f"{kind}/tumbleweed/repo/{repo}", False)
            add("oss-update", "update/tumbleweed", True)
            add("non-oss-update", "update/tumbleweed-non-oss", False)
        else:
            release = f"leap/{config.release}"
            for repo in ("oss", "non-oss"):
                add(repo, f"distribution/{release}/repo/{repo}", repo == "oss")
                for kind in ("debug", "source"):
                    add(f"{repo}-{kind}", f"{kind}/distribution/{release}/repo/{repo}", False)
            for repo in ("oss", "non-oss"):
                add(f"{repo}-update", f"update/{release}/{repo}", repo == "oss")
        return repos

    def _zypper(self, context: Context) -> str | None:
        """zypper when the host has it: mkosi prefers it for openSUSE, and falls back to dnf."""
        try:
            return zypper.executable(context)
        except BuildError:
            try:
                dnf.executable(context)
            except BuildError:
                raise BuildError(
                    "the tool 'zypper' was not found on this host (install the Debian package 'zypper')"
                ) from None
            return None

    def _run(self, context: Context, verb: str, packages: list[str], *, root: Path | None = None,
             apivfs: bool = True) -> None:
        config = context.config
        self.check_release(config)
        self.architecture(config)
        executable = self._zypper(context)
        if executable is None:
            # No zypper: the dnf path of the base class.
            dnf_executable = self._setup(context)
            self._dnf(context, dnf_executable, verb, packages, root=root, apivfs=apivfs)
            return
        repos = self.repositories(context)
        check_repositories(config, repos, self.pretty_name,
                           repository_ids(package_manager_dir(context) / zypper.REPOS_DIR))
        # zypper has no option to enable a repository for one run: Repositories= enable them in the file.
        repos = [RpmRepository(r.id, r.url, r.gpgurls, enabled=r.enabled or r.id in config.repositories)
                 for r in repos]
        zypper.setup(context, repos)
        zypper.invoke(context, verb, packages, zypper=executable, where=self.where(config), root=root,
                      apivfs=apivfs)

    def sync_repository_metadata(self, context: Context) -> None:
        """zypper refresh (or dnf makecache) before anything is installed, unless CacheOnly=."""
        if context.config.cache_only != CacheOnly.none:
            return
        if self._zypper(context) is None:
            super().sync_repository_metadata(context)
            return
        # zypper sets up an rpm database in its install root even to refresh: use a scratch root so that
        # the image is untouched until packages are installed.
        scratch = context.workspace / "zypper-refresh"
        try:
            self._run(context, "refresh", [], root=scratch, apivfs=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def install(self, context: Context) -> None:
        config = context.config
        if not config.base_trees:
            self._run(context, "install", list(self.base_packages), apivfs=False)
        if config.packages:
            self._run(context, "install", list(config.packages))

    def install_packages(self, context: Context, packages: list[str], *, root: Path | None = None) -> None:
        if packages:
            self._run(context, "install", packages, root=root)

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        if packages:
            self._run(context, "remove", packages)


DISTRIBUTION = OpenSUSE()
