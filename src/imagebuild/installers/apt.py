"""apt through mmdebstrap: bootstrap a Debian-family root with a persistent package cache.

mmdebstrap runs apt from the host with the image as its root, so the image needs no apt of its own.
The .deb files and the repository lists are kept outside the workspace between builds: they are
hard-linked into the new root before apt runs (so a warm build downloads no package) and back out
after it (so every build adds what it fetched).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.tools.run import CommandError, find_tool, run

if TYPE_CHECKING:
    from imagebuild.build.context import Context

HOOKS = Path(__file__).parent / "hooks"
ARCHIVES = "/var/cache/apt/archives"
LISTS = "/var/lib/apt/lists"


def _copy_command(src: str, dst: str, *, link: bool) -> str:
    """Shell that copies the contents of src into dst without replacing files dst has already."""
    flags = "-aln" if link else "-an"
    return f'mkdir -p {dst} && if [ -d {src} ]; then cp {flags} {src}/. {dst}/; fi'


def _same_filesystem(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def cache_hooks(archives: Path, lists: Path, workspace: Path) -> list[str]:
    """mmdebstrap options that move the package cache into the new root and back out again."""
    archives.mkdir(parents=True, exist_ok=True)
    lists.mkdir(parents=True, exist_ok=True)
    link = _same_filesystem(archives, workspace)
    root = '"$1"'
    setup = " && ".join(
        [
            _copy_command(shlex.quote(str(archives)), f"{root}{ARCHIVES}", link=link),
            _copy_command(shlex.quote(str(lists)), f"{root}{LISTS}", link=False),
        ]
    )
    # The lists are replaced as a whole so that suites no longer configured drop out of the cache.
    new_lists = shlex.quote(f"{lists}.new")
    save = " && ".join(
        [
            _copy_command(f"{root}{ARCHIVES}", shlex.quote(str(archives)), link=link),
            f"rm -rf {new_lists}",
            _copy_command(f"{root}{LISTS}", new_lists, link=False),
            f"rm -rf {new_lists}/lock {new_lists}/partial {shlex.quote(str(lists))}",
            f"mv {new_lists} {shlex.quote(str(lists))}",
        ]
    )
    # essential/unlink would delete the essential packages' .debs before we could save them;
    # download/empty refuses a pre-filled archive directory.
    return [
        "--skip=essential/unlink",
        "--skip=download/empty",
        f"--setup-hook={setup}",
        f"--customize-hook={save}",
    ]


def _host_dpkg_architecture(variable: str) -> str | None:
    """A DEB_HOST_* value of the host (e.g. DEB_HOST_ARCH=amd64), or None without dpkg-dev."""
    try:
        return subprocess.run(["dpkg-architecture", "-q", variable], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def eatmydata_hooks(architecture: str) -> list[str]:
    """Hooks that run the image's dpkg with the host's libeatmydata while the image is built.

    dpkg's fsyncs buy nothing for a tree that is thrown away on failure; skipping them saves about 30%.
    The library comes from the host (mmdebstrap's own eatmydata hook downloads it on every build,
    which would defeat the package cache), so this works only for the host's architecture.
    """
    multiarch = _host_dpkg_architecture("DEB_HOST_MULTIARCH")
    if multiarch is None or architecture != _host_dpkg_architecture("DEB_HOST_ARCH"):
        return []
    library = Path(f"/usr/lib/{multiarch}/libeatmydata.so")
    if not library.exists():
        return []
    extract, undo = HOOKS / "eatmydata-extract.sh", HOOKS / "eatmydata-customize.sh"
    return [f'--extract-hook=sh {extract} "$1" {multiarch}', f'--customize-hook=sh {undo} "$1" {multiarch}']


_MISSING_PACKAGE = re.compile(r"E: (?:Unable to locate package\s+|Package '?)([^\s']+)")


def bootstrap(
    context: Context, *, suite: str, architecture: str, sources: list[str], packages: list[str]
) -> None:
    """Install the essential set plus `packages` into context.root."""
    config = context.config
    mmdebstrap = find_tool("mmdebstrap", package="mmdebstrap")
    cache = context.package_cache / "debian"
    argv: list[str] = [
        mmdebstrap,
        "--mode=root",
        # Verbose: apt's Get: lines show what was downloaded (with --debug, and in a failure's log).
        "--verbose",
        "--variant=essential",
        f"--architectures={architecture}",
        "--format=directory",
        # Skeleton trees are already in the root when the distribution is installed.
        "--skip=check/empty",
        f"--aptopt=APT::Install-Recommends \"{'true' if config.with_recommends else 'false'}\"",
    ]
    if packages:
        argv.append("--include=" + ",".join(packages))
    argv += eatmydata_hooks(architecture)
    if not config.with_docs:
        argv.append("--dpkgopt=path-exclude=/usr/share/doc/*")
        argv.append("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        argv.append("--dpkgopt=path-exclude=/usr/share/man/*")
    if not config.repository_key_check:
        argv.append("--aptopt=Acquire::AllowInsecureRepositories \"true\"")
        argv.append("--aptopt=APT::Get::AllowUnauthenticated \"true\"")
    argv += cache_hooks(
        cache / "archives", cache / f"lists~{suite}~{architecture}", context.workspace
    )
    argv += [suite, os.fspath(context.root), *sources]
    env = {}
    if config.source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(config.source_date_epoch)
    try:
        run(argv, what="mmdebstrap", env=env)
    except CommandError as e:
        missing = _MISSING_PACKAGE.findall(e.output)
        if missing:
            names = ", ".join(sorted(set(missing)))
            raise BuildError(
                f"Packages=: no package named {names} in {config.distribution} {suite} ({architecture}); "
                "check the spelling (apt-cache search NAME) or add the repository that provides it"
            ) from None
        raise
