"""dnf with --installroot: a generated dnf.conf and .repo file, and a persistent package cache.

Everything dnf reads or writes besides the image is redirected: its configuration, repositories and
variables come from the workspace's package manager directory (never from the host's /etc), and the
downloaded packages stay in PackageCacheDirectory=/<distribution> between builds (keepcache).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import CacheOnly
from imagebuild.errors import BuildError
from imagebuild.installers.common import (
    GENERATED_MARKER,
    distribution_cache,
    is_native,
    package_manager_dir,
    package_manager_environment,
    run_package_manager,
    sort_packages,
    write_generated,
)
from imagebuild.installers.rpm import RpmRepository, fixup_rpmdb_location, repo_file
from imagebuild.tools.run import find_tool, run

if TYPE_CHECKING:
    from imagebuild.context import Context

REPOS_DIR = "etc/yum.repos.d"
REPO_FILE = f"{REPOS_DIR}/imagebuild.repo"

_MISSING = (
    re.compile(r"No match for argument: (.+?)\s*$", re.MULTILINE),
    re.compile(r"No package (\S+) available"),
)


def executable(context: Context) -> str:
    """dnf5 where it can do the job, else dnf.

    dnf5 cannot build for a foreign architecture (it has no --forcearch), so dnf is used for those.
    """
    if is_native(context.config):
        try:
            return find_tool("dnf5", tools_tree=context.tools_tree)
        except BuildError:
            pass
    return find_tool("dnf", package="dnf", tools_tree=context.tools_tree)


def is_dnf5(dnf: str) -> bool:
    return os.path.basename(dnf) == "dnf5"


def setup(
    context: Context,
    repos: Sequence[RpmRepository],
    *,
    dnf: str,
    variables: Mapping[str, str] | None = None,
    filelists: bool = True,
) -> None:
    """Write dnf.conf, the .repo file and the dnf variables into the package manager directory."""
    pkgmngr = package_manager_dir(context)
    main = ["[main]", f"install_weak_deps={int(context.config.with_recommends)}"]
    # dnf5 skips the file lists by default, but some packages still depend on paths only they resolve
    # (https://bugzilla.redhat.com/show_bug.cgi?id=2180842).
    if is_dnf5(dnf) and filelists:
        main.append("optional_metadata_types=filelists")
    write_generated(pkgmngr / "etc/dnf/dnf.conf", "\n".join(main) + "\n")
    repofile = pkgmngr / REPO_FILE
    repofile.parent.mkdir(parents=True, exist_ok=True)
    repofile.write_text(GENERATED_MARKER + repo_file(repos))
    varsdir = pkgmngr / "etc/dnf/vars"
    varsdir.mkdir(parents=True, exist_ok=True)
    for name, value in (variables or {}).items():
        # A variable file of PackageManagerTrees= wins.
        if not (varsdir / name).exists():
            (varsdir / name).write_text(f"{value}\n")
    (pkgmngr / "var/lib/dnf").mkdir(parents=True, exist_ok=True)


def command(context: Context, dnf: str, *, architecture: str, root: Path) -> list[str]:
    """dnf's argv up to the verb, for the image at root."""
    config = context.config
    pkgmngr = package_manager_dir(context)
    dnf5 = is_dnf5(dnf)
    argv = [
        dnf,
        "--assumeyes",
        f"--config={pkgmngr / 'etc/dnf/dnf.conf'}",
        "--best",
        f"--releasever={config.release}",
        f"--installroot={root}",
        "--setopt=keepcache=1",
        f"--setopt=cachedir={distribution_cache(context)}",
        f"--setopt=reposdir={pkgmngr / REPOS_DIR}",
        f"--setopt=varsdir={pkgmngr / 'etc/dnf/vars'}",
        f"--setopt=persistdir={pkgmngr / 'var/lib/dnf'}",
        "--setopt=check_config_file_age=0",
        # The host's dnf plugins know nothing about the image (subscription-manager, versionlock ...).
        "--disable-plugin=*" if dnf5 else "--disableplugin=*",
    ]
    if not config.repository_key_check:
        argv.append("--nogpgcheck")
    enable = "--enable-repo" if dnf5 else "--enablerepo"
    argv += [f"{enable}={repo}" for repo in config.repositories]
    # CacheOnly=: always installs only from the package cache; metadata keeps the cached metadata but may
    # still download packages. A local mirror is local anyway.
    if not config.local_mirror:
        if config.cache_only == CacheOnly.always:
            argv.append("--cacheonly")
        elif config.cache_only == CacheOnly.metadata:
            argv.append("--setopt=metadata_expire=never")
    if not is_native(config):
        argv.append(f"--forcearch={architecture}")
    if not config.with_docs:
        argv.append("--no-docs" if dnf5 else "--nodocs")
    return argv


def makecache(context: Context, *, dnf: str, architecture: str) -> None:
    """Refresh the repository metadata in the package cache (the "sync repository metadata" stage).

    --refresh marks the cached metadata as expired: dnf fetches what changed (a LocalMirror= rebuilt in
    place included), and the installs that follow use it without checking again.
    """
    # A scratch install root: the image stays untouched until packages are installed.
    scratch = context.workspace / "dnf-makecache"
    scratch.mkdir(parents=True, exist_ok=True)
    argv = [*command(context, dnf, architecture=architecture, root=scratch), "makecache", "--refresh"]
    try:
        run(argv, what="dnf makecache", env=package_manager_environment(context.config),
            tools_tree=context.tools_tree)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def invoke(
    context: Context,
    verb: str,
    packages: Sequence[str],
    *,
    dnf: str,
    architecture: str,
    where: str,
    root: Path | None = None,
    apivfs: bool = True,
) -> None:
    """Run `dnf VERB PACKAGES` on the image at root (context.root unless given)."""
    root = root or context.root
    root.mkdir(parents=True, exist_ok=True)
    argv = [*command(context, dnf, architecture=architecture, root=root), verb, *sort_packages(packages)]
    run_package_manager(context, argv, root=root, name="dnf", missing=_MISSING, where=where, apivfs=apivfs)
    fixup_rpmdb_location(root)
    # dnf writes its logs relative to the install root whatever it is told; they are not the image's.
    log = root / "var/log"
    if log.is_dir():
        for entry in log.iterdir():
            if entry.name.startswith(("dnf", "hawkey", "yum")):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
