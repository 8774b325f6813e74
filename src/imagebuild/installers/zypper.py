"""zypper with --installroot: a generated zypp.conf and .repo file, and a persistent package cache."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import CacheOnly
from imagebuild.installers.common import (
    GENERATED_MARKER,
    distribution_cache,
    package_manager_dir,
    package_manager_environment,
    run_package_manager,
    sort_packages,
    write_generated,
)
from imagebuild.installers.rpm import RpmRepository, fixup_rpmdb_location, repo_file
from imagebuild.tools.run import find_tool

if TYPE_CHECKING:
    from imagebuild.context import Context

REPOS_DIR = "etc/zypp/repos.d"
CONF = "etc/zypp/zypp.conf"
# Refresh repository metadata at most every 48 hours, as dnf does by default.
REFRESH_DELAY_MINUTES = 48 * 60

_MISSING = (
    re.compile(r"No provider of '([^']+)' found"),
    re.compile(r"Package '([^']+)' not found"),
)


def executable(context: Context) -> str:
    return find_tool("zypper", package="zypper", tools_tree=context.tools_tree)


def setup(context: Context, repos: Sequence[RpmRepository]) -> None:
    """Write zypp.conf and the .repo file into the package manager directory."""
    pkgmngr = package_manager_dir(context)
    # Documentation can only be left out through zypp.conf.
    write_generated(pkgmngr / CONF,
        "[main]\n"
        f"rpm.install.excludedocs = {'no' if context.config.with_docs else 'yes'}\n"
        f"repo.refresh.delay = {REFRESH_DELAY_MINUTES}\n"
    )
    repofile = pkgmngr / REPOS_DIR / "imagebuild.repo"
    repofile.parent.mkdir(parents=True, exist_ok=True)
    # keeppackages: downloaded packages stay in the cache directory for the next build.
    repofile.write_text(GENERATED_MARKER + repo_file(repos, extra=["autorefresh=1", "keeppackages=1"]))


def command(context: Context, zypper: str, *, root: Path) -> list[str]:
    """zypper's argv up to the verb, for the image at root."""
    config = context.config
    pkgmngr = package_manager_dir(context)
    argv = [
        zypper,
        f"--installroot={root}",
        f"--cache-dir={distribution_cache(context)}",
        f"--reposd-dir={pkgmngr / REPOS_DIR}",
        "--gpg-auto-import-keys" if config.repository_key_check else "--no-gpg-checks",
        "--non-interactive",
    ]
    # CacheOnly=: the repository metadata kept in the cache directory is used as it is. zypper has no
    # option to refuse package downloads, so always and metadata behave alike.
    if config.cache_only != CacheOnly.none:
        argv.append("--no-refresh")
    return argv


def verb_options(context: Context, verb: str) -> list[str]:
    if verb == "install":
        return ["--download", "in-advance",
                "--recommends" if context.config.with_recommends else "--no-recommends"]
    if verb == "remove":
        return ["--clean-deps"]
    return []


def invoke(
    context: Context,
    verb: str,
    packages: Sequence[str],
    *,
    zypper: str,
    where: str,
    root: Path | None = None,
    apivfs: bool = True,
) -> None:
    root = root or context.root
    root.mkdir(parents=True, exist_ok=True)
    argv = [*command(context, zypper, root=root), verb, *verb_options(context, verb), *sort_packages(packages)]
    env = package_manager_environment(context.config)
    env["ZYPP_CONF"] = str(package_manager_dir(context) / CONF)
    cache = distribution_cache(context)
    created = missing_below(root, cache)
    try:
        run_package_manager(context, argv, root=root, name="zypper", missing=_MISSING, where=where, apivfs=apivfs,
                            env=env)
    finally:
        remove_solver_cache(root, cache, created)
    fixup_rpmdb_location(root)


def missing_below(root: Path, path: Path) -> list[Path]:
    """The directories of `path` below root that do not exist yet, outermost first."""
    missing, current = [], root
    for part in path.absolute().parts[1:]:
        current = current / part
        if not current.exists() and not current.is_symlink():
            missing.append(current)
    return missing


def remove_solver_cache(root: Path, cache: Path, created: list[Path]) -> None:
    """Remove what zypper wrote below the install root at the cache directory's host path.

    zypper keeps the solver cache of the installed system (@System) there; it is not part of the image.
    Directories on the way that zypper created are removed when empty, except the top two levels (/var,
    /var/tmp, /root ...), which may just as well have come from a package.
    """
    inside = root / cache.absolute().relative_to("/")
    if inside in created and inside.is_dir() and not inside.is_symlink():
        shutil.rmtree(inside)
    for directory in reversed(created[:-1]):
        if len(directory.relative_to(root).parts) <= 2:
            break
        try:
            directory.rmdir()
        except OSError:
            break
