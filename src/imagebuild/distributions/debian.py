"""Debian: repositories of a release, architecture names, and installation through apt (mmdebstrap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.installers.apt import AptSetup
from imagebuild.installers.apt_distribution import AptDistribution
from imagebuild.installers.apt_repository import AptRepository
from imagebuild.installers.common import architecture_name

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

DEFAULT_MIRROR = "http://deb.debian.org/debian"

# mkosi's architecture names → Debian's.
ARCHITECTURES = {
    "x86-64": "amd64",
    "x86": "i386",
    "arm64": "arm64",
    "arm": "armhf",
    "ppc64-le": "ppc64el",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loong64",
    "mips64-le": "mips64el",
}

# Suites with no -updates and -security companions.
ROLLING_RELEASES = {"sid", "unstable", "testing", "experimental", "rc-buggy"}

# The one-line sources entry of a repository (kept under its old name for callers of this module).
Repository = AptRepository


def debian_architecture(config: Config) -> str:
    return architecture_name(config, ARCHITECTURES, "Debian")


def repositories(config: Config, *, for_image: bool = False) -> list[AptRepository]:
    """The repositories of config.release: the release itself, and -updates/-security for stable ones.

    LocalMirror= replaces them all while building; the image itself (for_image) gets Mirror= or the default.
    """
    local = None if for_image else config.local_mirror
    mirror = (local or config.mirror or DEFAULT_MIRROR).rstrip("/")
    if not for_image and mirror.startswith("file:"):
        # apt reads file: packages where they are, out of reach of the image's dpkg (run in a chroot);
        # copy: makes it copy them into the root's archive directory first.
        mirror = "copy:" + mirror.removeprefix("file:")
    components = ("main", *[c for c in config.repositories if c != "main"])
    release = config.release
    # experimental holds only what differs from sid: it needs sid beside it.
    suites = ["sid", release] if release in ("experimental", "rc-buggy") else [release]
    repos = [AptRepository(mirror, suite, components) for suite in suites]
    if local or release in ROLLING_RELEASES:
        return repos
    repos.append(AptRepository(mirror, f"{release}-updates", components))
    # The security archive sits beside the main one on Debian's own mirror network.
    security = mirror[: -len("/debian")] + "/debian-security" if mirror.endswith("/debian") else None
    if security is not None:
        repos.append(AptRepository(security, f"{release}-security", components))
    return repos


def apt_setup(context: Context) -> AptSetup:
    """Where this build's packages come from: the release's repositories and the local packages."""
    config = context.config
    return AptSetup.for_build(
        context, distribution="debian", architecture=debian_architecture(config),
        repositories=repositories(config), image_repositories=repositories(config, for_image=True),
    )


class Debian(AptDistribution):
    name = "debian"

    def architecture(self, config: Config) -> str:
        return debian_architecture(config)

    def apt_setup(self, context: Context) -> AptSetup:
        return apt_setup(context)


DISTRIBUTION = Debian()
