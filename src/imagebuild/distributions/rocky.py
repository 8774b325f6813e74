"""Rocky Linux: CentOS's repositories and EPEL, from Rocky's mirror list or a mirror."""

from __future__ import annotations

from imagebuild.distributions.centos import CentOSRebuild


class Rocky(CentOSRebuild):
    name = "rocky"
    pretty_name = "Rocky Linux"
    key_name = "RPM-GPG-KEY-Rocky-{major}"
    key_url = "https://download.rockylinux.org/pub/rocky/RPM-GPG-KEY-Rocky-{major}"
    mirror_path = "rocky/$releasever/{repo}/$basearch/os"
    mirror_list = "https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo={repo}-$releasever"


DISTRIBUTION = Rocky()
# Where a build first downloads from (the host the plugin checks it can reach before building).
DOWNLOAD_URL = Rocky.mirror_list
