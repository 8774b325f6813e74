"""Rocky Linux: CentOS's repositories and EPEL, from Rocky's mirror list or a mirror."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from imagebuild.distributions.centos import CentOS, major_version
from imagebuild.installers.rpm import RpmRepository, find_gpgkey, join_mirror

if TYPE_CHECKING:
    from imagebuild.build.context import Context


class Rocky(CentOS):
    name = "rocky"
    pretty_name = "Rocky Linux"
    release_pattern = r"[0-9]+(\.[0-9]+)?"

    def gpgurls(self, context: Context) -> tuple[str, ...]:
        major = major_version(context.config.release)
        key = find_gpgkey(context, f"RPM-GPG-KEY-Rocky-{major}",
                          f"https://download.rockylinux.org/pub/rocky/RPM-GPG-KEY-Rocky-{major}")
        return (key,) if key else ()

    def repository_variants(self, context: Context, repo: str) -> Iterator[RpmRepository]:
        config = context.config
        if config.local_mirror:
            url = f"baseurl={config.local_mirror}"
        elif config.mirror:
            url = f"baseurl={join_mirror(config.mirror, f'rocky/$releasever/{repo}/$basearch/os')}"
        else:
            url = f"mirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo={repo}-$releasever"
        yield RpmRepository(repo, url, self.gpgurls(context))

    def sig_repositories(self, context: Context) -> Iterator[RpmRepository]:
        # The SIGs build for CentOS Stream only.
        return iter(())


DISTRIBUTION = Rocky()
