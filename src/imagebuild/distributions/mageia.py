"""Mageia: cauldron or a numbered release, core repositories from Mageia's mirror list or a mirror."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.distributions.dnfbased import DnfDistribution
from imagebuild.errors import BuildError
from imagebuild.installers.rpm import RpmRepository, find_gpgkey, join_mirror

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

MIRRORLIST = "mirrorlist=https://www.mageia.org/mirrorlist/?release=$releasever&arch=$basearch&section=core"
# Where a build first downloads from (the host the plugin checks it can reach before building).
DOWNLOAD_URL = MIRRORLIST.removeprefix("mirrorlist=")
GPG_URL = "https://mirrors.kernel.org/mageia/distrib/$releasever/$basearch/media/core/release/media_info/pubkey"


def copy_kernels_to_modules(root: Path) -> None:
    """Put /boot/vmlinuz-KVER also at /usr/lib/modules/KVER/vmlinuz, where kernel-install looks for it."""
    for kernel in sorted(root.glob("boot/vmlinuz-*")):
        version = kernel.name.removeprefix("vmlinuz-")
        target = root / "usr/lib/modules" / version / "vmlinuz"
        # OpenMandriva links it the other way round: replace the link by the file.
        if target.is_symlink():
            target.unlink()
        if target.parent.is_dir() and not target.exists():
            shutil.copy2(kernel, target)


class Mageia(DnfDistribution):
    name = "mageia"
    pretty_name = "Mageia"
    architectures = {"x86-64": "x86_64", "arm64": "aarch64"}

    def check_release(self, config: Config) -> None:
        if not (config.release == "cauldron" or re.fullmatch(r"[0-9]+", config.release)):
            raise BuildError(f"Release={config.release} is not a Mageia release (a number such as 9, or cauldron)")

    def repositories(self, context: Context) -> list[RpmRepository]:
        config = context.config
        key = find_gpgkey(context, "RPM-GPG-KEY-Mageia", GPG_URL)
        gpgurls = (key,) if key else ()
        if config.local_mirror:
            return [RpmRepository("core-release", f"baseurl={config.local_mirror}", gpgurls)]
        if config.mirror:
            url = f"baseurl={join_mirror(config.mirror, 'distrib/$releasever/$basearch/media/core')}"
            return [RpmRepository("core-release", f"{url}/release", gpgurls),
                    RpmRepository("core-updates", f"{url}/updates", gpgurls)]
        return [RpmRepository("core-release", f"{MIRRORLIST}&repo=release", gpgurls),
                RpmRepository("core-updates", f"{MIRRORLIST}&repo=updates", gpgurls)]

    def after_install(self, context: Context, root: Path) -> None:
        copy_kernels_to_modules(root)


DISTRIBUTION = Mageia()
