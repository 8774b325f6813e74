"""Debian: repositories of a release, architecture names, and installation through mmdebstrap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.installers import apt

if TYPE_CHECKING:
    from imagebuild.build.context import Context
    from imagebuild.config import Config

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


@dataclass(frozen=True)
class Repository:
    """One `deb` line: an archive URL, a suite and its components."""

    url: str
    suite: str
    components: tuple[str, ...]

    def sources_line(self) -> str:
        return f"deb {self.url} {self.suite} {' '.join(self.components)}"


def debian_architecture(config: Config) -> str:
    arch = str(config.architecture)
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise BuildError(f"Architecture={arch} is not an architecture Debian builds for") from None


def repositories(config: Config) -> list[Repository]:
    """The repositories of config.release: the release itself, and -updates/-security for stable ones."""
    mirror = (config.local_mirror or config.mirror or DEFAULT_MIRROR).rstrip("/")
    components = ("main", *[c for c in config.repositories if c != "main"])
    release = config.release
    repos = [Repository(mirror, release, components)]
    if config.local_mirror or release in ROLLING_RELEASES:
        return repos
    repos.append(Repository(mirror, f"{release}-updates", components))
    # The security archive sits beside the main one on Debian's own mirror network.
    security = mirror[: -len("/debian")] + "/debian-security" if mirror.endswith("/debian") else None
    if security is not None:
        repos.append(Repository(security, f"{release}-security", components))
    return repos


class Debian:
    name = "debian"

    def install(self, context: Context) -> None:
        config = context.config
        apt.bootstrap(
            context,
            suite=config.release,
            architecture=debian_architecture(config),
            sources=[r.sources_line() for r in repositories(config)],
            packages=list(config.packages),
        )

    def install_packages(self, context: Context, packages: list[str]) -> None:
        raise BuildError("not supported yet: installing packages after the base system on Debian")

    def remove_packages(self, context: Context, packages: list[str]) -> None:
        raise BuildError("not supported yet: removing packages on Debian")
