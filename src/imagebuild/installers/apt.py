"""apt through mmdebstrap: bootstrap a Debian-family root with a persistent package cache.

mmdebstrap runs apt from the host with the image as its root, so the image needs no apt of its own.
The repository lists come from the "sync repository metadata" stage (apt_get.sync_lists), so the bootstrap
itself never refreshes them (--skip=update); the .deb files are hard-linked from the package cache into the
new root before apt runs (so a warm build downloads no package) and back out after it.

Nothing here is Debian-specific: an AptSetup says which suites to use, so other apt-based distributions
(Ubuntu) call the same functions.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import CacheOnly
from imagebuild.errors import BuildError
from imagebuild.installers.apt_cache import ARCHIVES, LISTS, PackageCache, copy_command, same_filesystem
from imagebuild.installers.apt_local import build_local_repository
from imagebuild.installers.apt_repository import AptRepository
from imagebuild.tools.run import CommandError, find_tool, run

if TYPE_CHECKING:
    from imagebuild.context import Context

HOOKS = Path(__file__).parent / "hooks"
# Temporary apt configuration inside the root while it is built; removed before the image is finished.
BUILD_APT_CONF = "/etc/apt/apt.conf.d/00imagebuild-build"
UNSAFE_IO_CONF = "/etc/dpkg/dpkg.cfg.d/00imagebuild-unsafe-io"


@dataclass(frozen=True)
class AptSetup:
    """Where the packages of an apt-based distribution come from, for one build.

    distribution names the package cache's subdirectory; architecture is the Debian name (amd64, arm64).
    build_repositories are used while building (LocalMirror=, the local package repository, trusted=yes when
    RepositoryKeyCheck=no); image_repositories end up in the image's /etc/apt/sources.list.
    """

    distribution: str
    suite: str
    architecture: str
    build_repositories: tuple[AptRepository, ...]
    image_repositories: tuple[AptRepository, ...]
    with_recommends: bool = False
    cache_only: CacheOnly = CacheOnly.none

    @classmethod
    def for_build(
        cls, context: Context, *, distribution: str, architecture: str, repositories: list[AptRepository],
        image_repositories: list[AptRepository],
    ) -> AptSetup:
        """The setup of one build: trusted=yes while building when RepositoryKeyCheck=no, plus the local
        package repository (PackageDirectories=, $PACKAGEDIR) when there is one."""
        config = context.config
        build = list(repositories)
        if not config.repository_key_check:
            build = [r.with_options("trusted=yes") for r in build]
        local = build_local_repository(context)
        if local is not None:
            build.append(local)
        return cls(
            distribution=distribution,
            suite=config.release,
            architecture=architecture,
            build_repositories=tuple(build),
            image_repositories=tuple(image_repositories),
            with_recommends=config.with_recommends,
            cache_only=config.cache_only,
        )

    def build_sources(self) -> list[str]:
        return [r.sources_line() for r in self.build_repositories]

    def image_sources(self) -> list[str]:
        return [r.sources_line() for r in self.image_repositories]


def package_cache(context: Context, setup: AptSetup) -> PackageCache:
    return PackageCache(context.package_cache / setup.distribution)


def build_apt_options(setup: AptSetup) -> list[str]:
    """apt configuration lines that hold while the image is built and not afterwards."""
    lines = [f'APT::Install-Recommends "{"true" if setup.with_recommends else "false"}";']
    if setup.cache_only == CacheOnly.always:
        # Use only what is in the package cache: apt fails instead of downloading.
        lines.append('APT::Get::Download "false";')
    return lines


def cache_hooks(cache: PackageCache, target: Path) -> list[str]:
    """mmdebstrap options that link the cached .debs into the new root and save new ones back out.

    target: the root if it exists already (a btrfs subvolume, UseSubvolumes=, has a device of its own:
    hard links into it fail), else the workspace it will be made in."""
    cache.prepare()
    link = same_filesystem(cache.archives, target)
    root = '"$1"'
    # essential/unlink would delete the essential packages' .debs before we could save them;
    # download/empty refuses a pre-filled archive directory.
    return [
        "--skip=essential/unlink",
        "--skip=download/empty",
        f"--setup-hook={cache.locked(cache.link_archives_into(root, link=link))}",
        f"--customize-hook={cache.locked(cache.save_archives_from(root, link=link))}",
    ]


def lists_hook(lists: Path) -> str:
    """The synced repository lists into the new root, before apt reads them (the update step is skipped)."""
    return "--setup-hook=" + copy_command(shlex.quote(str(lists)), f'"$1"{LISTS}', link=False)


def package_manager_tree_hooks(tree: Path | None) -> list[str]:
    """apt.conf.d, preferences.d and sources.list.d files of PackageManagerTrees= in the root while apt runs.

    mmdebstrap's apt reads them from the root; they are removed again before the image is finished.
    """
    if tree is None:
        return []
    setup, cleanup = [], []
    for part in ("apt.conf.d", "preferences.d", "sources.list.d"):
        directory = tree / "etc/apt" / part
        if not directory.is_dir():
            continue
        for file in sorted(p for p in directory.iterdir() if p.is_file()):
            inside = f'"$1"/etc/apt/{part}/imagebuild-{shlex.quote(file.name)}'
            setup.append(f"mkdir -p \"$1\"/etc/apt/{part} && cp {shlex.quote(str(file))} {inside}")
            cleanup.append(f"rm -f {inside}")
    options = [f"--setup-hook={' && '.join(setup)}"] if setup else []
    options += [f"--customize-hook={' && '.join(cleanup)}"] if cleanup else []
    return options


def image_config_hooks(setup: AptSetup) -> list[str]:
    """Temporary build options in, the image's own sources.list written at the end."""
    conf = '"$1"' + BUILD_APT_CONF
    options = " ".join(shlex.quote(line) for line in build_apt_options(setup))
    write_conf = f"mkdir -p \"$1\"/etc/apt/apt.conf.d && printf '%s\\n' {options} > {conf}"
    sources = "".join(line + "\n" for line in setup.image_sources())
    write_sources = f"printf %s {shlex.quote(sources)} > \"$1\"/etc/apt/sources.list"
    return [f"--setup-hook={write_conf}", f"--customize-hook=rm -f {conf} && {write_sources}"]


# mmdebstrap copies these from the host into a root that lacks them (as debootstrap does); mkosi's images get
# neither: the host's name and resolver configuration do not belong in an image.
HOST_COPIES = ("etc/hostname", "etc/resolv.conf")


def host_copies_hook(root: Path, host: Path = Path("/")) -> list[str]:
    """A customize hook that removes mmdebstrap's copies of HOST_COPIES: those the root (its skeleton
    trees) did not have before, while still the host's content in a plain file (a package's own file or
    symlink, such as systemd-resolved's /etc/resolv.conf, stays)."""
    removals = []
    for name in HOST_COPIES:
        if (root / name).exists() or (root / name).is_symlink():
            continue
        copy = f'"$1"/{name}'
        removals.append(f"if [ -f {copy} ] && [ ! -L {copy} ] && cmp -s {shlex.quote(str(host / name))} {copy}; "
                        f"then rm -f {copy}; fi")
    return [f"--customize-hook={'; '.join(removals)}"] if removals else []


HOST_TRUSTED_PARTS = Path("/etc/apt/trusted.gpg.d")


def keyring_directory(tree: Path | None, workspace: Path) -> Path | None:
    """The host's trusted keys plus those of a package manager tree's etc/apt/trusted.gpg.d, if it has any.

    None means the host's own /etc/apt/trusted.gpg.d is enough.
    """
    extra = tree / "etc/apt/trusted.gpg.d" if tree is not None else None
    if extra is None or not extra.is_dir() or not any(extra.iterdir()):
        return None
    merged = workspace / "apt" / "trusted.gpg.d"
    merged.mkdir(parents=True, exist_ok=True)
    for source in (HOST_TRUSTED_PARTS, extra):
        if not source.is_dir():
            continue
        for key in source.iterdir():
            if key.is_file():
                (merged / key.name).unlink(missing_ok=True)
                (merged / key.name).write_bytes(key.read_bytes())
    return merged


def host_dpkg_architecture(variable: str) -> str | None:
    """A DEB_HOST_* value of the host (e.g. DEB_HOST_ARCH=amd64), or None without dpkg-dev."""
    try:
        return subprocess.run(["dpkg-architecture", "-q", variable], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def eatmydata_library(architecture: str) -> tuple[str, Path] | None:
    """The host's multiarch triplet and libeatmydata, if it can serve dpkg of this architecture."""
    multiarch = host_dpkg_architecture("DEB_HOST_MULTIARCH")
    if multiarch is None or architecture != host_dpkg_architecture("DEB_HOST_ARCH"):
        return None
    library = Path(f"/usr/lib/{multiarch}/libeatmydata.so")
    return (multiarch, library) if library.exists() else None


def eatmydata_hooks(architecture: str) -> list[str]:
    """Hooks that run the image's dpkg with the host's libeatmydata while the image is built.

    dpkg's fsyncs buy nothing for a tree that is thrown away on failure; skipping them saves about 30%.
    The library comes from the host (mmdebstrap's own eatmydata hook downloads it on every build,
    which would defeat the package cache), so this works only for the host's architecture.
    """
    found = eatmydata_library(architecture)
    if found is None:
        # A foreign dpkg cannot load the host's library; dpkg's own switch skips at least its fsyncs.
        conf = '"$1"' + UNSAFE_IO_CONF
        return [f"--setup-hook=mkdir -p \"$1\"/etc/dpkg/dpkg.cfg.d && echo force-unsafe-io > {conf}",
                f"--customize-hook=rm -f {conf}"]
    multiarch = found[0]
    extract, undo = HOOKS / "eatmydata-extract.sh", HOOKS / "eatmydata-customize.sh"
    return [f'--extract-hook=sh {extract} "$1" {multiarch}', f'--customize-hook=sh {undo} "$1" {multiarch}']


# mkosi's architecture names → the qemu-user binfmt entry that runs them.
QEMU_BINFMT = {
    "arm64": "qemu-aarch64", "armhf": "qemu-arm", "i386": None, "ppc64el": "qemu-ppc64le",
    "s390x": "qemu-s390x", "riscv64": "qemu-riscv64", "loong64": "qemu-loongarch64", "mips64el": "qemu-mips64el",
}
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def check_foreign_architecture(architecture: str) -> None:
    """A foreign architecture needs arch-test (mmdebstrap asks it whether the host can run the architecture)
    and a registered qemu-user binfmt handler; say how to get each."""
    host = host_dpkg_architecture("DEB_HOST_ARCH")
    if host is None or architecture == host or (host, architecture) == ("amd64", "i386"):
        return
    if shutil.which("arch-test") is None:
        raise BuildError(
            f"Architecture={architecture}: building for a foreign architecture needs the tool 'arch-test' "
            "(install the Debian package 'arch-test')"
        )
    entry = QEMU_BINFMT.get(architecture)
    if entry is None:
        return
    if not (BINFMT / "status").exists():
        raise BuildError(
            f"Architecture={architecture}: binfmt_misc is not mounted on this host; run "
            "'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable' "
            "(packages qemu-user-static and binfmt-support)"
        )
    handler = BINFMT / entry
    if not handler.exists() or "enabled" not in handler.read_text():
        raise BuildError(
            f"Architecture={architecture}: no qemu-user emulator is registered for it; install the Debian "
            f"packages qemu-user-static and binfmt-support (then 'update-binfmts --enable {entry}')"
        )


_MISSING_PACKAGE = re.compile(r"E: (?:Unable to locate package\s+|Package '?|Version '[^']*' for ')([^\s']+)")


def missing_packages_error(output: str, setup: AptSetup, setting: str) -> BuildError | None:
    """A one-line error for apt's 'no such package' failures, None for other failures."""
    missing = _MISSING_PACKAGE.findall(output)
    if not missing:
        return None
    names = ", ".join(sorted(set(missing)))
    return BuildError(
        f"{setting}: no package (or version) {names} in {setup.distribution} {setup.suite} "
        f"({setup.architecture}); check the spelling (apt-cache search NAME) or add the repository that "
        "provides it"
    )


_UNCACHED = re.compile(r"E: (?:Unable to fetch some archives|Can't download)")


def uncached_error(output: str, setup: AptSetup) -> BuildError | None:
    """With CacheOnly=always, apt's refusal to download means the package cache lacks packages."""
    if setup.cache_only != CacheOnly.always or not _UNCACHED.search(output):
        return None
    return BuildError(
        f"CacheOnly=always: packages of {setup.distribution} {setup.suite} ({setup.architecture}) are missing "
        "from the package cache; build once with CacheOnly=none (or metadata) to fill it"
    )


def bootstrap(
    context: Context,
    setup: AptSetup,
    *,
    packages: list[str],
    lists: Path,
    package_manager_tree: Path | None = None,
    keyring: Path | None = None,
) -> None:
    """Install the essential set plus `packages` into context.root, with the repository lists in `lists`."""
    config = context.config
    mmdebstrap = find_tool("mmdebstrap", package="mmdebstrap")
    argv: list[str] = [
        mmdebstrap,
        "--mode=root",
        # Verbose: apt's Get: lines show what was downloaded (with --debug, and in a failure's log).
        "--verbose",
        "--variant=essential",
        f"--architectures={setup.architecture}",
        "--format=directory",
        # Skeleton trees are already in the root when the distribution is installed.
        "--skip=check/empty",
        # The lists were synced (or taken from the cache) before: the bootstrap needs no metadata download.
        "--skip=update",
        # Kept in the image: apt inside it behaves as the build did.
        f"--aptopt=APT::Install-Recommends \"{'true' if setup.with_recommends else 'false'}\"",
    ]
    if packages:
        argv.append("--include=" + ",".join(packages))
    if keyring is not None:
        argv.append(f"--keyring={keyring}")
    argv += eatmydata_hooks(setup.architecture)
    if not config.with_docs:
        argv.append("--dpkgopt=path-exclude=/usr/share/doc/*")
        argv.append("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        argv.append("--dpkgopt=path-exclude=/usr/share/man/*")
    argv.append(lists_hook(lists))
    argv += image_config_hooks(setup)
    argv += package_manager_tree_hooks(package_manager_tree)
    argv += host_copies_hook(context.root)
    argv += cache_hooks(package_cache(context, setup), context.root if context.root.exists() else context.workspace)
    argv += [setup.suite, os.fspath(context.root), *setup.build_sources()]
    env = {}
    if config.source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(config.source_date_epoch)
    try:
        run(argv, what="mmdebstrap", env=env)
    except CommandError as e:
        error = missing_packages_error(e.output, setup, "Packages=") or uncached_error(e.output, setup)
        if error is not None:
            raise error from None
        raise


__all__ = ["ARCHIVES", "LISTS", "AptRepository", "AptSetup", "bootstrap"]
