"""pacman with --root: a generated pacman.conf, and the persistent package cache as --cachedir."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import CacheOnly
from imagebuild.errors import BuildError
from imagebuild.installers.common import (
    distribution_cache,
    package_manager_dir,
    run_package_manager,
    sort_packages,
    write_generated,
)
from imagebuild.tools.run import find_tool

if TYPE_CHECKING:
    from imagebuild.context import Context

CONF = "etc/pacman.conf"
# The host keyring pacman checks signatures with, unless the package manager directory brings one.
HOST_GPGDIR = Path("/etc/pacman.d/gnupg")

_MISSING = (re.compile(r"error: target not found: (\S+)"),)


@dataclass(frozen=True)
class PacmanRepository:
    name: str
    server: str


def executable(context: Context) -> str:
    return find_tool("pacman", package="pacman-package-manager", tools_tree=context.tools_tree)


def config_text(context: Context, repos: Sequence[PacmanRepository], *, architecture: str) -> str:
    # RepositoryKeyCheck=no is for local mirrors made on the fly, which have no signatures.
    sig_level = "Required DatabaseOptional" if context.config.repository_key_check else "Never"
    lines = ["[options]", f"Architecture = {architecture}", f"SigLevel = {sig_level}", "ParallelDownloads = 5"]
    if not context.config.with_docs:
        lines += ["NoExtract = usr/share/doc/* usr/share/man/* usr/share/info/*"]
    for repo in repos:
        lines += ["", f"[{repo.name}]", f"Server = {repo.server}"]
    # More repositories from PackageManagerTrees=, after the distribution's own.
    extra = package_manager_dir(context) / "etc/pacman.d"
    if any(extra.glob("*.conf")):
        lines += ["", f"Include = {extra}/*.conf"]
    return "\n".join(lines) + "\n"


def gpgdir(context: Context) -> Path:
    """The keyring: the package manager directory's, else the host's; a clear error without one."""
    own = package_manager_dir(context) / "etc/pacman.d/gnupg"
    if own.is_dir():
        return own
    if context.config.repository_key_check and not HOST_GPGDIR.is_dir():
        raise BuildError(
            f"pacman has no keyring to check Arch Linux's signatures ({HOST_GPGDIR} is missing): install the "
            "Debian package 'archlinux-keyring', then run `pacman-key --init && pacman-key --populate archlinux` "
            "(or set RepositoryKeyCheck=no)"
        )
    return HOST_GPGDIR


def setup(context: Context, repos: Sequence[PacmanRepository], *, architecture: str) -> None:
    """Write pacman.conf, unless PackageManagerTrees= brought one."""
    write_generated(package_manager_dir(context) / CONF, config_text(context, repos, architecture=architecture))


def command(context: Context, pacman: str, *, architecture: str, root: Path) -> list[str]:
    """pacman's argv up to the operation, for the image at root."""
    return [
        pacman,
        "--config", os.fspath(package_manager_dir(context) / CONF),
        "--root", os.fspath(root),
        # The log would otherwise be written into the image.
        "--logfile=/dev/null",
        "--cachedir", os.fspath(distribution_cache(context)),
        "--gpgdir", os.fspath(gpgdir(context)),
        "--hookdir", os.fspath(root / "etc/pacman.d/hooks"),
        "--arch", architecture,
        "--color", "never",
        "--noconfirm",
    ]


def sync_databases(context: Context) -> Path:
    """Where the repository databases (core.db, extra.db ...) are kept between builds."""
    return distribution_cache(context) / "sync"


def restore_databases(context: Context, root: Path, *, required: bool) -> None:
    """The databases of the last refresh into the image, as if pacman had just synced them.

    CacheOnly= requires them: pacman then does not refresh at all.
    """
    cached = sorted(sync_databases(context).glob("*.db"))
    if not cached and not required:
        return
    if not cached:
        raise BuildError(
            f"CacheOnly={context.config.cache_only}: the package cache ({distribution_cache(context)}) has no "
            "repository databases of Arch Linux; build once with CacheOnly=none to fill it"
        )
    target = root / "var/lib/pacman/sync"
    target.mkdir(parents=True, exist_ok=True)
    for db in cached:
        shutil.copy2(db, target / db.name)


def save_databases(context: Context, root: Path) -> None:
    saved = sync_databases(context)
    saved.mkdir(parents=True, exist_ok=True)
    for db in sorted((root / "var/lib/pacman/sync").glob("*.db")):
        shutil.copy2(db, saved / db.name)


def invoke(
    context: Context,
    operation: str,
    options: Sequence[str],
    packages: Sequence[str],
    *,
    pacman: str,
    architecture: str,
    where: str,
    root: Path | None = None,
    apivfs: bool = True,
) -> None:
    root = root or context.root
    # pacman refuses a root without its database directory.
    (root / "var/lib/pacman").mkdir(parents=True, exist_ok=True)
    refresh = operation == "--sync" and context.config.cache_only == CacheOnly.none
    if operation == "--sync":
        # With the last databases in place, --refresh downloads only those that changed since.
        restore_databases(context, root, required=not refresh)
    argv = command(context, pacman, architecture=architecture, root=root)
    argv += [operation, *(["--refresh"] if refresh else []), *options, *sort_packages(packages)]
    run_package_manager(context, argv, root=root, name="pacman", missing=_MISSING, where=where, apivfs=apivfs)
    if refresh:
        save_databases(context, root)
