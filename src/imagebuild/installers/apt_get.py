"""The host's apt-get working on a build's files: syncing repository lists, and changing an installed root.

Like mmdebstrap, apt runs on the host with the image as its root (Dir=) and runs the image's own dpkg in a
chroot (DPkg::Chroot-Directory), so the image needs dpkg but no apt. Everything apt keeps for itself (lists,
its binary caches, logs, the sources it reads) lives in the workspace, not in the image.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import CacheOnly
from imagebuild.errors import BuildError
from imagebuild.installers import apt_cache, apt_freshness
from imagebuild.installers.apt import (
    HOOKS,
    AptSetup,
    build_apt_options,
    eatmydata_library,
    missing_packages_error,
    package_cache,
    uncached_error,
)
from imagebuild.log import logger
from imagebuild.tools.run import CommandError, find_tool, run

if TYPE_CHECKING:
    from imagebuild.context import Context

# Keeps services from being started by maintainer scripts while packages are installed into a root.
POLICY_RC_D = "#!/bin/sh\nexit 101\n"


@dataclass(frozen=True)
class AptWorkspace:
    """apt's own files for one build, below the workspace."""

    directory: Path

    @classmethod
    def of(cls, context: Context, setup: AptSetup) -> AptWorkspace:
        return cls(context.workspace / "apt" / f"{setup.suite}~{setup.architecture}")

    @property
    def lists(self) -> Path:
        return self.directory / "lists"

    @property
    def sources_list(self) -> Path:
        return self.directory / "sources.list"

    @property
    def config_file(self) -> Path:
        return self.directory / "apt.conf"

    @property
    def status(self) -> Path:
        """An empty dpkg status: what apt sees when it only syncs lists."""
        return self.directory / "status"

    @property
    def synced(self) -> bool:
        return (self.directory / "synced").exists()


def _quote(value: str | os.PathLike[str]) -> str:
    return '"' + os.fspath(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def apt_config(
    setup: AptSetup, work: AptWorkspace, *, root: Path | None, package_manager_tree: Path | None,
    keyring: Path | None,
) -> str:
    """The APT_CONFIG file for apt-get on the host: everything explicit, nothing read from the host's /etc/apt."""
    lines = [
        f"Apt::Architecture {_quote(setup.architecture)};",
        f"Apt::Architectures {_quote(setup.architecture)};",
        f"Dir {_quote(root if root is not None else work.directory)};",
        f"Dir::State::Status {_quote(root / 'var/lib/dpkg/status' if root else work.status)};",
        f"Dir::State::Lists {_quote(work.lists)};",
        # apt's binary caches are rebuilt from the lists; keep them out of the image.
        f"Dir::Cache {_quote(work.directory / 'cache')};",
        f"Dir::Cache::Archives {_quote((root or work.directory) / apt_cache.ARCHIVES.lstrip('/'))};",
        f"Dir::Log {_quote(work.directory / 'log')};",
        f"Dir::Etc::SourceList {_quote(work.sources_list)};",
        f"Dir::Etc::Trusted {_quote('/etc/apt/trusted.gpg')};",
        f"Dir::Etc::TrustedParts {_quote(keyring or '/etc/apt/trusted.gpg.d')};",
        # The directory must exist for apt; the workspace's is empty unless a package manager tree fills it.
        f"Dir::Etc::Main {_quote('/dev/null')};",
        # Downloads go to directories only root can enter; there is no point in dropping to _apt.
        'APT::Sandbox::User "root";',
        # Quiet but with the Get: lines that show what was downloaded.
        'quiet "1";',
        'Dpkg::Use-Pty "false";',
        # Translations are of no use to a build and cost a download per suite.
        'Acquire::Languages "none";',
        *build_apt_options(setup),
    ]
    tree_etc = package_manager_tree / "etc/apt" if package_manager_tree else None
    for key, part in (("SourceParts", "sources.list.d"), ("Parts", "apt.conf.d"),
                      ("PreferencesParts", "preferences.d")):
        directory = tree_etc / part if tree_etc is not None and (tree_etc / part).is_dir() else None
        lines.append(f"Dir::Etc::{key} {_quote(directory or (work.directory / 'empty'))};")
    lines.append(f"Dir::Etc::Preferences {_quote('/dev/null')};")
    if root is not None:
        lines += [
            f"DPkg::Chroot-Directory {_quote(root)};",
            # The image's dpkg, found through env inside the chroot; TMPDIR points outside of it.
            'Dir::Bin::dpkg "env";',
            'DPkg::Options { "--unset=TMPDIR"; "dpkg"; "--log=/dev/null"; "--force-unsafe-io"; };',
        ]
    return "\n".join(lines) + "\n"


def prepare(
    setup: AptSetup, work: AptWorkspace, *, root: Path | None, package_manager_tree: Path | None,
    keyring: Path | None,
) -> dict[str, str]:
    """Write apt's files for one run; returns the environment apt-get needs."""
    for directory in (work.lists / "partial", work.directory / "cache", work.directory / "log",
                      work.directory / "empty", work.directory / apt_cache.ARCHIVES.lstrip("/") / "partial"):
        directory.mkdir(parents=True, exist_ok=True)
    work.status.touch(exist_ok=True)
    work.sources_list.write_text("".join(line + "\n" for line in setup.build_sources()))
    work.config_file.write_text(
        apt_config(setup, work, root=root, package_manager_tree=package_manager_tree, keyring=keyring)
    )
    tmp = (root / "tmp") if root is not None else work.directory
    tmp.mkdir(parents=True, exist_ok=True)
    return {"APT_CONFIG": os.fspath(work.config_file), "TMPDIR": os.fspath(tmp), "DEBIAN_FRONTEND": "noninteractive"}


def sync_lists(
    context: Context, setup: AptSetup, *, package_manager_tree: Path | None = None, keyring: Path | None = None,
) -> Path:
    """The repository lists for this build in the workspace: refreshed from the network unless CacheOnly=.

    Returns the directory that holds them. The refreshed lists replace the cached ones, so a later
    CacheOnly= build has them.
    """
    work = AptWorkspace.of(context, setup)
    cache = package_cache(context, setup)
    env = prepare(setup, work, root=None, package_manager_tree=package_manager_tree, keyring=keyring)
    have_cached = apt_cache.restore_lists(cache, setup.suite, setup.architecture, work.lists)
    (work.lists / "partial").mkdir(parents=True, exist_ok=True)
    if setup.cache_only != CacheOnly.none:
        if not have_cached:
            raise BuildError(
                f"CacheOnly={setup.cache_only}: the package cache ({cache.directory}) has no repository "
                f"metadata for {setup.distribution} {setup.suite} ({setup.architecture}); build once with "
                "CacheOnly=none to fill it"
            )
        logger.info("CacheOnly=%s: using the cached repository metadata", setup.cache_only)
        # The local package repository is not in the cache; it is indexed from the workspace.
        update_local_lists(setup, work, env)
    elif have_cached and _lists_unchanged(setup, work, package_manager_tree):
        logger.info("The repositories' InRelease files are unchanged since the last sync: no apt-get update")
    else:
        apt_get = find_tool("apt-get", package="apt")
        try:
            run([apt_get, "update"], what="apt-get update", env=env)
        except CommandError as e:
            raise expired_metadata_error(e.output, setup) or e from None
        apt_freshness.write_stamp(work.lists, _sources_fingerprint(setup))
        apt_cache.save_lists(cache, setup.suite, setup.architecture, work.lists)
    (work.directory / "synced").touch()
    return work.lists


def _sources_fingerprint(setup: AptSetup) -> str:
    """What the lists were fetched for: the sources and the architecture."""
    return f"{setup.architecture}\n" + "".join(line + "\n" for line in setup.build_sources())


def _lists_unchanged(setup: AptSetup, work: AptWorkspace, package_manager_tree: Path | None) -> bool:
    # Package manager trees may add sources or apt options (Check-Valid-Until, proxies): then apt decides.
    if package_manager_tree is not None and (package_manager_tree / "etc/apt").exists():
        return False
    return apt_freshness.lists_are_fresh(setup.build_repositories, work.lists, _sources_fingerprint(setup))


_EXPIRED = re.compile(r"Release file for (\S+) is expired \(invalid since ([^)]*)\)")


def expired_metadata_error(output: str, setup: AptSetup) -> BuildError | None:
    """apt refuses metadata past its Valid-Until (a stale mirror or a wrong clock): say what to do."""
    found = _EXPIRED.search(output)
    if found is None:
        return None
    return BuildError(
        f"the repository metadata {found.group(1)} of {setup.distribution} {setup.suite} expired "
        f"{found.group(2)} ago (a stale mirror, or this machine's clock is wrong); use another Mirror=, or "
        "accept it with 'Acquire::Check-Valid-Until \"false\";' in etc/apt/apt.conf.d/ of PackageManagerTrees="
    )


def update_local_lists(setup: AptSetup, work: AptWorkspace, env: dict[str, str]) -> None:
    """Refresh only the lists of file:/copy: repositories (local packages), never touching the network."""
    local = [line for line in setup.build_sources() if " copy:" in line or " file:" in line]
    if not local:
        return
    only_local = work.directory / "sources-local.list"
    only_local.write_text("".join(line + "\n" for line in local))
    apt_get = find_tool("apt-get", package="apt")
    run([apt_get, "-o", f"Dir::Etc::SourceList={only_local}", "-o", "Dir::Etc::SourceParts=/dev/null",
         "-o", "APT::Get::List-Cleanup=false",
         # CacheOnly=always forbids downloads, which for apt-get includes fetching lists, even local ones.
         "-o", "APT::Get::Download=true", "update"], what="apt-get update (local packages)", env=env)


def _in_root_namespace(root: Path, argv: list[str]) -> list[str]:
    """argv in a private mount namespace with /dev, /proc and /sys of the host mounted into root.

    The mounts vanish with the namespace, so a failed or interrupted run leaves nothing mounted.
    """
    unshare = find_tool("unshare", package="util-linux")
    r = shlex.quote(os.fspath(root))
    script = " && ".join([
        f"mkdir -p {r}/dev {r}/proc {r}/sys",
        f"mount --rbind /dev {r}/dev",
        f"mount -t proc proc {r}/proc",
        f"mount --rbind /sys {r}/sys",
        'exec "$@"',
    ])
    return [unshare, "--mount", "--propagation=private", "--", "sh", "-c", script, "sh", *argv]


@contextlib.contextmanager
def _services_disabled(root: Path) -> Iterator[None]:
    policy = root / "usr/sbin/policy-rc.d"
    if policy.exists() or policy.is_symlink():
        yield
        return
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


@contextlib.contextmanager
def _eatmydata(root: Path, architecture: str) -> Iterator[None]:
    """The image's dpkg without fsync while apt works (see apt.eatmydata_hooks); undone afterwards."""
    found = eatmydata_library(architecture)
    if found is None or not (root / "usr/bin/dpkg").exists():
        yield
        return
    multiarch = found[0]
    run(["sh", os.fspath(HOOKS / "eatmydata-extract.sh"), os.fspath(root), multiarch], what="eatmydata setup")
    try:
        yield
    finally:
        run(["sh", os.fspath(HOOKS / "eatmydata-customize.sh"), os.fspath(root), multiarch],
            what="eatmydata cleanup")


def apt_get_in_root(
    context: Context, setup: AptSetup, root: Path, arguments: list[str], *, setting: str,
    package_manager_tree: Path | None = None, keyring: Path | None = None, downloads: bool = True,
) -> None:
    """Run `apt-get ARGUMENTS` on an installed root, with the package cache linked in and saved afterwards."""
    if not (root / "var/lib/dpkg/status").exists():
        raise BuildError(f"{setting}: {root} has no dpkg database; the distribution must be installed first")
    work = AptWorkspace.of(context, setup)
    if downloads and not work.synced:
        sync_lists(context, setup, package_manager_tree=package_manager_tree, keyring=keyring)
    env = prepare(setup, work, root=root, package_manager_tree=package_manager_tree, keyring=keyring)
    if downloads:
        update_local_lists(setup, work, env)
    cache = package_cache(context, setup)
    apt_get = find_tool("apt-get", package="apt")
    argv = _in_root_namespace(root, [apt_get, "--yes", *arguments])
    if downloads:
        apt_cache.link_archives(cache, root)
    try:
        with _services_disabled(root), _eatmydata(root, setup.architecture):
            run(argv, what=f"apt-get {arguments[0]}", env=env)
    except CommandError as e:
        error = missing_packages_error(e.output, setup, setting) or uncached_error(e.output, setup)
        if error is not None:
            raise error from None
        raise
    finally:
        if downloads:
            apt_cache.save_archives(cache, root)


def install(context: Context, setup: AptSetup, root: Path, packages: list[str], **kw: Path | None) -> None:
    """Install packages (names, name=version, globs) and their dependencies into an installed root."""
    if packages:
        apt_get_in_root(context, setup, root, ["install", "--", *packages], setting="packages to install",
                        package_manager_tree=kw.get("package_manager_tree"), keyring=kw.get("keyring"))


def remove(context: Context, setup: AptSetup, root: Path, packages: list[str]) -> None:
    """Purge packages (and their configuration) from an installed root; needs no repository or network."""
    if packages:
        apt_get_in_root(context, setup, root, ["purge", "--", *packages], setting="RemovePackages=",
                        downloads=False)
