"""AlmaLinux: CentOS's repositories and EPEL, from AlmaLinux's mirror list or a mirror."""

from __future__ import annotations

from imagebuild.distributions.centos import CentOSRebuild


class Alma(CentOSRebuild):
    name = "alma"
    pretty_name = "AlmaLinux"
    key_name = "RPM-GPG-KEY-AlmaLinux-{major}"
    key_url = "https://repo.almalinux.org/almalinux/RPM-GPG-KEY-AlmaLinux-{major}"
    mirror_path = "almalinux/$releasever/{repo}/$basearch/os"
    mirror_list = "https://mirrors.almalinux.org/mirrorlist/$releasever/{lower}"


DISTRIBUTION = Alma()
# Where a build first downloads from (the host the plugin checks it can reach before building).
DOWNLOAD_URL = Alma.mirror_list
