"""OpenMandriva: cooker, rolling, rock or a numbered release, main repositories from a mirror."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.distributions.dnfbased import DnfDistribution
from imagebuild.distributions.mageia import copy_kernels_to_modules
from imagebuild.errors import BuildError
from imagebuild.installers.rpm import RpmRepository, find_gpgkey, join_mirror

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

# The default mirror of the man page's table.
DEFAULT_MIRROR = "http://mirrors.openmandriva.org"
GPG_URL = ("https://raw.githubusercontent.com/OpenMandrivaAssociation/openmandriva-repos/master/"
           "RPM-GPG-KEY-OpenMandriva")


class OpenMandriva(DnfDistribution):
    name = "openmandriva"
    pretty_name = "OpenMandriva"
    architectures = {"x86-64": "x86_64", "arm64": "aarch64", "riscv64": "riscv64"}

    def check_release(self, config: Config) -> None:
        if not (config.release in ("cooker", "rolling", "rock") or re.fullmatch(r"[0-9]+(\.[0-9]+)?", config.release)):
            raise BuildError(
                f"Release={config.release} is not an OpenMandriva release (cooker, rolling, rock or a version such "
                "as 5.0)"
            )

    def repositories(self, context: Context) -> list[RpmRepository]:
        config = context.config
        key = find_gpgkey(context, "RPM-GPG-KEY-OpenMandriva", GPG_URL)
        gpgurls = (key,) if key else ()
        if config.local_mirror:
            return [RpmRepository("main-release", f"baseurl={config.local_mirror}", gpgurls)]
        url = f"baseurl={join_mirror(config.mirror or DEFAULT_MIRROR, '$releasever/repository/$basearch/main')}"
        return [RpmRepository("main-release", f"{url}/release", gpgurls),
                RpmRepository("main-updates", f"{url}/updates", gpgurls)]

    def after_install(self, context: Context, root: Path) -> None:
        copy_kernels_to_modules(root)


DISTRIBUTION = OpenMandriva()
