"""Fedora Linux: numbered releases, rawhide and ELN, from Fedora's metalinks or a mirror."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from imagebuild.distributions.dnfbased import DnfDistribution
from imagebuild.errors import BuildError
from imagebuild.installers.rpm import RpmRepository, find_gpgkey, join_mirror

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

METALINK = "metalink=https://mirrors.fedoraproject.org/metalink?arch=$basearch"
# Where a build first downloads from (the host the plugin checks it can reach before building).
DOWNLOAD_URL = METALINK.removeprefix("metalink=")
ELN_MIRROR = "https://odcs.fedoraproject.org/composes/production/latest-Fedora-ELN/compose"
# Fedora's keys of all current releases in one file (https://fedoraproject.org/security/).
GPG_URL = "https://fedoraproject.org/fedora.gpg"


def release_at_most(release: str, threshold: int) -> bool:
    return release.isdigit() and int(release) <= threshold


class Fedora(DnfDistribution):
    name = "fedora"
    pretty_name = "Fedora Linux"
    architectures = {
        "x86-64": "x86_64",
        "arm64": "aarch64",
        "ppc64-le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
        "ia64": "ia64",
        "mips64-le": "mips64el",
        "mips-le": "mipsel",
        "parisc": "parisc64",
    }

    def check_release(self, config: Config) -> None:
        if not (config.release in ("rawhide", "eln") or re.fullmatch(r"[0-9]+", config.release)):
            raise BuildError(
                f"Release={config.release} is not a Fedora release (a number such as 39, rawhide or eln)"
            )

    def filelists(self, config: Config) -> bool:
        # Up to Fedora 37 dependencies on file paths still need the file lists.
        return release_at_most(config.release, 37)

    def repositories(self, context: Context) -> list[RpmRepository]:
        config = context.config
        key = find_gpgkey(context, f"RPM-GPG-KEY-fedora-{config.release}-primary", GPG_URL)
        gpgurls = (key,) if key else ()

        if config.local_mirror:
            return [RpmRepository("fedora", f"baseurl={config.local_mirror}", gpgurls)]

        if config.release == "eln":
            mirror = config.mirror or ELN_MIRROR
            repos = []
            for name in ("AppStream", "BaseOS", "Extras", "CRB"):
                url = f"baseurl={join_mirror(mirror, name)}"
                repos += [
                    RpmRepository(name.lower(), f"{url}/$basearch/os", gpgurls),
                    RpmRepository(f"{name.lower()}-debuginfo", f"{url}/$basearch/debug/tree", gpgurls,
                                  enabled=False),
                    RpmRepository(f"{name.lower()}-source", f"{url}/source/tree", gpgurls, enabled=False),
                ]
            return repos

        rawhide = config.release == "rawhide"
        if config.mirror:
            directory = "development" if rawhide else "releases"
            url = f"baseurl={join_mirror(config.mirror, f'{directory}/$releasever/Everything')}"
            repos = [
                RpmRepository("fedora", f"{url}/$basearch/os", gpgurls),
                RpmRepository("fedora-debuginfo", f"{url}/$basearch/debug/tree", gpgurls, enabled=False),
                RpmRepository("fedora-source", f"{url}/source/tree", gpgurls, enabled=False),
            ]
            if rawhide:
                return repos
            for name, path, enabled in (("updates", "updates", True),
                                        ("updates-testing", "updates/testing", False)):
                url = f"baseurl={join_mirror(config.mirror, f'{path}/$releasever/Everything')}"
                repos += [
                    RpmRepository(name, f"{url}/$basearch", gpgurls, enabled=enabled),
                    RpmRepository(f"{name}-debuginfo", f"{url}/$basearch/debug", gpgurls, enabled=False),
                    RpmRepository(f"{name}-source", f"{url}/source/tree", gpgurls, enabled=False),
                ]
            return repos

        repos = [
            RpmRepository("fedora", f"{METALINK}&repo=fedora-$releasever", gpgurls),
            RpmRepository("fedora-debuginfo", f"{METALINK}&repo=fedora-debug-$releasever", gpgurls,
                          enabled=False),
            RpmRepository("fedora-source", f"{METALINK}&repo=fedora-source-$releasever", gpgurls,
                          enabled=False),
        ]
        # On rawhide the fedora repository is the moving one; releases are frozen and updated separately.
        if rawhide:
            return repos
        for name, metalink, enabled in (("updates", "updates-released", True),
                                        ("updates-testing", "updates-testing", False)):
            repos += [
                RpmRepository(name, f"{METALINK}&repo={metalink}-f$releasever", gpgurls, enabled=enabled),
                RpmRepository(f"{name}-debuginfo", f"{METALINK}&repo={metalink}-debug-f$releasever", gpgurls,
                              enabled=False),
                RpmRepository(f"{name}-source", f"{METALINK}&repo={metalink}-source-f$releasever", gpgurls,
                              enabled=False),
            ]
        return repos


DISTRIBUTION = Fedora()
