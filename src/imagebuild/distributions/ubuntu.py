"""Ubuntu: a release's main (and universe) components with -updates and -security, through apt (mmdebstrap).

The installation itself is Debian's (installers/apt.py); Ubuntu differs in its mirrors (ports.ubuntu.com
for everything but x86), its archive keyring and its security archive.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.distributions.debian import ARCHITECTURES as DEBIAN_ARCHITECTURES
from imagebuild.errors import BuildError
from imagebuild.installers.apt import AptSetup
from imagebuild.installers.apt_distribution import AptDistribution
from imagebuild.installers.apt_repository import AptRepository
from imagebuild.installers.common import architecture_name

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

DEFAULT_MIRROR = "http://archive.ubuntu.com/ubuntu"
PORTS_MIRROR = "http://ports.ubuntu.com"
# Security updates are never mirrored: they come from Ubuntu's own servers.
SECURITY_MIRROR = "http://security.ubuntu.com/ubuntu"
KEYRING = Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg")

# mkosi's architecture names → Ubuntu's: Debian's names, for the architectures Ubuntu builds.
ARCHITECTURES = {
    arch: name for arch, name in DEBIAN_ARCHITECTURES.items()
    if arch in ("x86-64", "x86", "arm64", "arm", "ppc64-le", "s390x", "riscv64")
}

# The releases since 20.04 (and devel, the release under development).
RELEASES = (
    "focal", "groovy", "hirsute", "impish", "jammy", "kinetic", "lunar", "mantic", "noble", "oracular",
    "plucky", "questing", "devel",
)


def check_release(config: Config) -> None:
    if config.release not in RELEASES:
        raise BuildError(
            f"Release={config.release} is not an Ubuntu release this version knows (one of {', '.join(RELEASES)})"
        )


def ubuntu_architecture(config: Config) -> str:
    return architecture_name(config, ARCHITECTURES, "Ubuntu")


def components(config: Config) -> tuple[str, ...]:
    # From kinetic on, usr-is-merged (needed for a merged-/usr system) is in universe.
    base = ["main"] if config.release in ("focal", "jammy") else ["main", "universe"]
    return tuple(dict.fromkeys([*base, *config.repositories]))


def repositories(config: Config, *, for_image: bool = False, signed_by: Path | None = None) -> list[AptRepository]:
    """The release, -updates and -security; LocalMirror= alone while building (not in the image)."""
    options = (f"signed-by={signed_by}",) if signed_by is not None else ()
    if config.local_mirror and not for_image:
        mirror = config.local_mirror.rstrip("/")
        # apt would read file: packages in place, out of reach of the image's dpkg in its chroot; copy:
        # makes it copy them into the root first (as for Debian).
        if mirror.startswith("file:"):
            mirror = "copy:" + mirror.removeprefix("file:")
        return [AptRepository(mirror, config.release, ("main",), options)]
    x86 = str(config.architecture) in ("x86-64", "x86")
    mirror = (config.mirror or (DEFAULT_MIRROR if x86 else PORTS_MIRROR)).rstrip("/")
    security = SECURITY_MIRROR if x86 else PORTS_MIRROR
    comps = components(config)
    return [
        AptRepository(mirror, config.release, comps, options),
        AptRepository(mirror, f"{config.release}-updates", comps, options),
        AptRepository(security, f"{config.release}-security", comps, options),
    ]


def keyring(config: Config, tree: Path | None) -> Path | None:
    """The archive keyring the repositories are signed-by, or None when no signature is checked.

    A package manager tree with its own trusted.gpg.d keys replaces it (apt then trusts those).
    """
    if not config.repository_key_check:
        return None
    if tree is not None and any((tree / "etc/apt/trusted.gpg.d").glob("*")):
        return None
    if not KEYRING.exists():
        raise BuildError(
            f"Ubuntu's archive keyring {KEYRING} is missing on this host: install the package 'ubuntu-keyring' "
            "(from Ubuntu's archive), put the key into PackageManagerTrees=/etc/apt/trusted.gpg.d, or set "
            "RepositoryKeyCheck=no"
        )
    return KEYRING


def apt_setup(context: Context) -> AptSetup:
    config = context.config
    check_release(config)
    signed_by = keyring(config, context.package_manager_tree())
    return AptSetup.for_build(
        context, distribution="ubuntu", architecture=ubuntu_architecture(config),
        repositories=repositories(config, signed_by=signed_by),
        # Inside the image the keyring is the one the ubuntu-keyring package installs at the same path.
        image_repositories=repositories(config, for_image=True, signed_by=signed_by),
    )


class Ubuntu(AptDistribution):
    """Installed like Debian (installers/apt_distribution.py), from Ubuntu's repositories."""

    name = "ubuntu"

    def architecture(self, config: Config) -> str:
        return ubuntu_architecture(config)

    def check(self, config: Config) -> None:
        """Refuse a Release= or Architecture= Ubuntu does not have, before any work is done."""
        check_release(config)
        super().check(config)

    def apt_setup(self, context: Context) -> AptSetup:
        return apt_setup(context)


DISTRIBUTION = Ubuntu()
