"""CentOS Stream (8 and later), its EPEL repositories and the Hyperscale SIG; the base of its rebuilds.

AlmaLinux, Rocky Linux, RHEL and RHEL UBI differ only in where their repositories are and which keys
sign them: they subclass CentOS and override repository_variants() and gpgurls().
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

from imagebuild.distributions.dnfbased import DnfDistribution
from imagebuild.errors import BuildError
from imagebuild.installers.rpm import RpmRepository, find_gpgkey, join_mirror

if TYPE_CHECKING:
    from pathlib import Path

    from imagebuild.config import Config
    from imagebuild.context import Context

CENTOS_METALINK = "metalink=https://mirrors.centos.org/metalink"
FEDORA_METALINK = "metalink=https://mirrors.fedoraproject.org/metalink?arch=$basearch"
# Where a build first downloads from (the host the plugin checks it can reach before building).
DOWNLOAD_URL = CENTOS_METALINK.removeprefix("metalink=")
HYPERSCALE_COMPONENTS = ("main", "experimental", "facebook", "hotfixes", "spin", "intel")


def major_version(release: str) -> int:
    return int(release.split(".")[0])


class CentOS(DnfDistribution):
    name = "centos"
    pretty_name = "CentOS"
    architectures = {
        "x86-64": "x86_64",
        "ppc64-le": "ppc64le",
        "s390x": "s390x",
        "arm64": "aarch64",
    }
    # A major version ("9"); the rebuilds also accept minor versions ("9.3").
    release_pattern = r"[0-9]+"

    def check_release(self, config: Config) -> None:
        if not re.fullmatch(self.release_pattern, config.release):
            raise BuildError(
                f"Release={config.release} is not a {self.pretty_name} release (a version number such as 9)"
            )
        if major_version(config.release) <= 7:
            raise BuildError(f"Release={config.release}: {self.pretty_name} 7 and earlier are not supported")

    def dnf_variables(self, config: Config) -> dict[str, str]:
        # CentOS's own repository paths say "9-stream".
        return {"stream": f"{config.release}-stream"}

    def after_install(self, context: Context, root: Path) -> None:
        # dnf from Fedora or Debian puts the rpm database in /usr/lib/sysimage/rpm; CentOS's rpm looks in
        # /var/lib/rpm. Move it there and leave a symlink.
        newdb, olddb = root / "usr/lib/sysimage/rpm", root / "var/lib/rpm"
        if newdb.is_dir() and not newdb.is_symlink():
            shutil.rmtree(olddb, ignore_errors=True)
            olddb.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(newdb, olddb)
            newdb.symlink_to(os.path.relpath(olddb, start=newdb.parent))

    def gpgurls(self, context: Context) -> tuple[str, ...]:
        keys = ("RPM-GPG-KEY-CentOS-Official", "RPM-GPG-KEY-CentOS-SIG-Extras")
        return tuple(k for key in keys if (k := find_gpgkey(context, key, f"https://www.centos.org/keys/{key}")))

    def repository_variants(self, context: Context, repo: str) -> Iterator[RpmRepository]:
        config = context.config
        gpgurls = self.gpgurls(context)
        old = major_version(config.release) <= 8
        lower = repo.lower()
        if config.local_mirror:
            yield RpmRepository(repo, f"baseurl={config.local_mirror}", gpgurls)
        elif mirror := config.mirror:
            if old:
                yield RpmRepository(lower, f"baseurl={join_mirror(mirror, f'centos/$stream/{repo}/$basearch/os')}",
                                    gpgurls)
                yield RpmRepository(f"{lower}-debuginfo",
                                    f"baseurl={join_mirror(mirror, 'centos-debuginfo/$stream/$basearch')}",
                                    gpgurls, enabled=False)
                yield RpmRepository(f"{lower}-source",
                                    f"baseurl={join_mirror(mirror, f'centos/$stream/{repo}/Source')}",
                                    gpgurls, enabled=False)
            elif repo == "extras":
                yield RpmRepository(lower,
                                    f"baseurl={join_mirror(mirror, 'SIGs/$stream/extras/$basearch/extras-common')}",
                                    gpgurls)
                yield RpmRepository(f"{lower}-source",
                                    f"baseurl={join_mirror(mirror, 'SIGs/$stream/extras/source/extras-common')}",
                                    gpgurls, enabled=False)
            else:
                yield RpmRepository(lower, f"baseurl={join_mirror(mirror, f'$stream/{repo}/$basearch/os')}",
                                    gpgurls)
                yield RpmRepository(f"{lower}-debuginfo",
                                    f"baseurl={join_mirror(mirror, f'$stream/{repo}/$basearch/debug/tree')}",
                                    gpgurls, enabled=False)
                yield RpmRepository(f"{lower}-source",
                                    f"baseurl={join_mirror(mirror, f'$stream/{repo}/source/tree')}",
                                    gpgurls, enabled=False)
        elif old:
            yield RpmRepository(lower,
                                f"mirrorlist=http://mirrorlist.centos.org/?release=$stream&arch=$basearch&repo={repo}",
                                gpgurls)
            # The mirror list has no debug and source repositories.
            yield RpmRepository(f"{lower}-debuginfo", "baseurl=http://debuginfo.centos.org/$stream/$basearch",
                                gpgurls, enabled=False)
            yield RpmRepository(f"{lower}-source", f"baseurl=https://vault.centos.org/centos/$stream/{repo}/Source",
                                gpgurls, enabled=False)
        elif repo == "extras":
            yield RpmRepository(lower, f"{CENTOS_METALINK}?arch=$basearch&repo=centos-extras-sig-extras-common-$stream",
                                gpgurls)
            yield RpmRepository(f"{lower}-source",
                                f"{CENTOS_METALINK}?arch=source&repo=centos-extras-sig-extras-common-source-$stream",
                                gpgurls, enabled=False)
        else:
            yield RpmRepository(lower, f"{CENTOS_METALINK}?arch=$basearch&repo=centos-{lower}-$stream", gpgurls)
            yield RpmRepository(f"{lower}-debuginfo",
                                f"{CENTOS_METALINK}?arch=$basearch&repo=centos-{lower}-debug-$stream",
                                gpgurls, enabled=False)
            yield RpmRepository(f"{lower}-source", f"{CENTOS_METALINK}?arch=source&repo=centos-{lower}-source-$stream",
                                gpgurls, enabled=False)

    def repositories(self, context: Context) -> list[RpmRepository]:
        config = context.config
        repos: list[RpmRepository] = []
        if config.local_mirror:
            repos += self.repository_variants(context, "AppStream")
        else:
            for repo in ("BaseOS", "AppStream", "extras"):
                repos += self.repository_variants(context, repo)
        # CodeReady Builder: called PowerTools up to 8.
        repos += self.repository_variants(context, "CRB" if major_version(config.release) >= 9 else "PowerTools")
        repos += self.epel_repositories(context)
        repos += self.sig_repositories(context)
        return repos

    def epel_repositories(self, context: Context) -> Iterator[RpmRepository]:
        """EPEL and EPEL Next: disabled, for Repositories=epel (and friends) to enable."""
        config = context.config
        if config.local_mirror:
            return
        major = major_version(config.release)
        key = find_gpgkey(context, f"RPM-GPG-KEY-EPEL-{major}",
                          f"https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-{major}")
        gpgurls = (key,) if key else ()
        if mirror := config.mirror:
            for repo, directory in (("epel", "epel"), ("epel-next", "epel/next"),
                                    ("epel-testing", "epel/testing"), ("epel-next-testing", "epel/testing/next")):
                url = f"baseurl={join_mirror(mirror, f'{directory}/$releasever/Everything')}"
                yield RpmRepository(repo, f"{url}/$basearch", gpgurls, enabled=False)
                yield RpmRepository(f"{repo}-debuginfo", f"{url}/$basearch/debug", gpgurls, enabled=False)
                yield RpmRepository(f"{repo}-source", f"{url}/source/tree", gpgurls, enabled=False)
            return
        for repo, metalink in (("epel", "epel"), ("epel-next", "epel-next")):
            yield RpmRepository(repo, f"{FEDORA_METALINK}&repo={metalink}-$releasever", gpgurls, enabled=False)
            yield RpmRepository(f"{repo}-debuginfo", f"{FEDORA_METALINK}&repo={metalink}-debug-$releasever",
                                gpgurls, enabled=False)
            yield RpmRepository(f"{repo}-source", f"{FEDORA_METALINK}&repo={metalink}-source-$releasever",
                                gpgurls, enabled=False)
        for repo, metalink in (("epel-testing", "testing-epel$releasever"),
                               ("epel-testing-debuginfo", "testing-debug-epel$releasever"),
                               ("epel-testing-source", "testing-source-epel$releasever"),
                               ("epel-next-testing", "epel-testing-next-$releasever"),
                               ("epel-next-testing-debuginfo", "epel-testing-next-debug-$releasever"),
                               ("epel-next-testing-source", "epel-testing-next-source-$releasever")):
            yield RpmRepository(repo, f"{FEDORA_METALINK}&repo={metalink}", gpgurls, enabled=False)

    def sig_repositories(self, context: Context) -> Iterator[RpmRepository]:
        """The Hyperscale SIG's repositories, disabled (Repositories=hyperscale-packages-main ...)."""
        config = context.config
        if config.local_mirror:
            return
        key = find_gpgkey(context, "RPM-GPG-KEY-CentOS-SIG-HyperScale",
                          "https://www.centos.org/keys/RPM-GPG-KEY-CentOS-SIG-HyperScale")
        gpgurls = (key,) if key else ()
        sig = "hyperscale"
        old = major_version(config.release) <= 8
        for component in HYPERSCALE_COMPONENTS:
            c = f"packages-{component}"
            name = f"{sig}-{c}"
            if mirror := config.mirror:
                if old:
                    urls = (f"centos/$stream/{sig}/$basearch/{c}", f"$stream/{sig}/$basearch",
                            f"centos/$stream/{sig}/Source")
                else:
                    urls = (f"SIGs/$stream/{sig}/$basearch/{c}", f"SIGs/$stream/{sig}/$basearch/{c}/debug",
                            f"SIGs/$stream/{sig}/source/{c}")
                main, debug, source = (f"baseurl={join_mirror(mirror, u)}" for u in urls)
            elif old:
                main = f"mirrorlist=http://mirrorlist.centos.org/?release=$stream&arch=$basearch&repo={name}"
                debug = f"baseurl=http://debuginfo.centos.org/centos/$stream/{sig}/$basearch"
                source = f"baseurl=https://vault.centos.org/$stream/{sig}/Source/{c}"
            else:
                main = f"{CENTOS_METALINK}?arch=$basearch&repo=centos-{sig}-sig-{c}-$stream"
                debug = f"{CENTOS_METALINK}?arch=$basearch&repo=centos-{sig}-sig-{c}-debug-$stream"
                source = f"{CENTOS_METALINK}?arch=source&repo=centos-{sig}-sig-{c}-source-$stream"
            yield RpmRepository(name, main, gpgurls, enabled=False)
            yield RpmRepository(f"{name}-debuginfo", debug, gpgurls, enabled=False)
            yield RpmRepository(f"{name}-source", source, gpgurls, enabled=False)
            yield RpmRepository(f"{name}-testing",
                                f"baseurl=https://buildlogs.centos.org/centos/$stream/{sig}/$basearch/{c}",
                                gpgurls, enabled=False)


class CentOSRebuild(CentOS):
    """A rebuild of RHEL (AlmaLinux, Rocky Linux): CentOS's repository names and EPEL, with its own key,
    mirror layout and mirror list. The templates take {major} (the release's major version) and {repo}."""

    release_pattern = r"[0-9]+(\.[0-9]+)?"
    key_name: str
    key_url: str
    mirror_path: str
    mirror_list: str

    def gpgurls(self, context: Context) -> tuple[str, ...]:
        major = major_version(context.config.release)
        key = find_gpgkey(context, self.key_name.format(major=major), self.key_url.format(major=major))
        return (key,) if key else ()

    def repository_variants(self, context: Context, repo: str) -> Iterator[RpmRepository]:
        config = context.config
        if config.local_mirror:
            url = f"baseurl={config.local_mirror}"
        elif config.mirror:
            url = f"baseurl={join_mirror(config.mirror, self.mirror_path.format(repo=repo))}"
        else:
            url = f"mirrorlist={self.mirror_list.format(repo=repo, lower=repo.lower())}"
        yield RpmRepository(repo, url, self.gpgurls(context))

    def sig_repositories(self, context: Context) -> Iterator[RpmRepository]:
        # The SIGs build for CentOS Stream only.
        return iter(())


DISTRIBUTION = CentOS()
