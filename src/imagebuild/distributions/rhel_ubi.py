"""RHEL Universal Base Image: the freely available subset of RHEL, from Red Hat's UBI CDN, and EPEL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from imagebuild.distributions.centos import CentOS
from imagebuild.distributions.rhel import redhat_gpgurls
from imagebuild.installers.rpm import RpmRepository, join_mirror

if TYPE_CHECKING:
    from imagebuild.context import Context

CDN = "https://cdn-ubi.redhat.com/content/public/ubi/dist/"
# Where a build first downloads from (the host the plugin checks it can reach before building).
DOWNLOAD_URL = CDN


class RHELUBI(CentOS):
    name = "rhel-ubi"
    pretty_name = "RHEL UBI"

    def gpgurls(self, context: Context) -> tuple[str, ...]:
        return redhat_gpgurls(context)

    def repository_variants(self, context: Context, repo: str) -> Iterator[RpmRepository]:
        config = context.config
        gpgurls = self.gpgurls(context)
        if config.local_mirror:
            yield RpmRepository(repo, f"baseurl={config.local_mirror}", gpgurls)
            return
        mirror = config.mirror or CDN
        v = config.release
        base = f"ubi{v}/{v}/$basearch/{repo}"
        yield RpmRepository(f"ubi-{v}-{repo}-rpms", f"baseurl={join_mirror(mirror, f'{base}/os')}", gpgurls)
        yield RpmRepository(f"ubi-{v}-{repo}-debug-rpms", f"baseurl={join_mirror(mirror, f'{base}/debug')}",
                            gpgurls, enabled=False)
        yield RpmRepository(f"ubi-{v}-{repo}-source", f"baseurl={join_mirror(mirror, f'{base}/source')}",
                            gpgurls, enabled=False)

    def repositories(self, context: Context) -> list[RpmRepository]:
        repos: list[RpmRepository] = []
        for repo in ("baseos", "appstream", "codeready-builder"):
            repos += self.repository_variants(context, repo)
        repos += self.epel_repositories(context)
        return repos


DISTRIBUTION = RHELUBI()
