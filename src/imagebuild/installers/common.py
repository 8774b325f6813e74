"""What the package managers other than apt share: where their configuration and caches live, and the
API file systems their scriptlets need."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.host import host
from imagebuild.errors import BuildError
from imagebuild.tools.run import CommandError, find_tool, run

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context


def package_manager_dir(context: Context) -> Path:
    """The workspace directory that holds the generated package manager configuration (mkosi's pkgmngr).

    It lives in the workspace, never in the image: repository files with local paths or credentials must
    not end up in the output.
    """
    return context.workspace / "pkgmngr"


# The first line of the configuration files imagebuild writes; files without it came from
# PackageManagerTrees= and are the user's to keep.
GENERATED_MARKER = "# Written by imagebuild for this build; PackageManagerTrees= can provide your own.\n"


def write_generated(path: Path, text: str) -> bool:
    """Write a package manager configuration file unless PackageManagerTrees= provided one.

    Returns whether the file is ours (written now).
    """
    if path.exists() and not path.read_text(errors="replace").startswith(GENERATED_MARKER):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(GENERATED_MARKER + text)
    return True


def distribution_cache(context: Context) -> Path:
    """The persistent package cache of one distribution: PackageCacheDirectory=/<distribution>."""
    path = context.package_cache / str(context.config.distribution)
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_native(config: Config) -> bool:
    return host().architecture == config.architecture


def architecture_name(config: Config, table: dict[str, str], pretty: str) -> str:
    """The distribution's name for config.architecture, or a clear error for one it does not build for."""
    arch = str(config.architecture)
    try:
        return table[arch]
    except KeyError:
        known = ", ".join(table)
        raise BuildError(f"Architecture={arch} is not an architecture {pretty} builds for (known: {known})") from None


def sort_packages(packages: Iterable[str]) -> list[str]:
    """Package names first, then paths to package files (dnf and zypper resolve names before files)."""
    names = [p for p in packages if "/" not in p]
    files = [p for p in packages if "/" in p]
    return sorted(dict.fromkeys(names)) + list(dict.fromkeys(files))


def apivfs_prefix(context: Context, root: Path) -> list[str]:
    """An argv prefix that mounts /dev, /proc and /tmp into root for the duration of one command.

    rpm and pacman scriptlets chroot into the image and expect the API file systems there; bubblewrap
    mounts them in a private mount namespace, so nothing stays mounted when the command ends.
    """
    bwrap = find_tool("bwrap", package="bubblewrap", tools_tree=context.tools_tree)
    for directory in ("dev", "proc", "tmp"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    return [
        bwrap, "--dev-bind", "/", "/",
        "--dev", os.fspath(root / "dev"),
        "--proc", os.fspath(root / "proc"),
        "--tmpfs", os.fspath(root / "tmp"),
        "--die-with-parent",
        "--",
    ]


def package_manager_environment(config: Config) -> dict[str, str]:
    """The environment of a package manager run: Environment=, plus what keeps scriptlets quiet."""
    # HOME: Debian's rpm keeps its database in $HOME/.rpmdb below the root; pinning it to /root makes
    # fixup_rpmdb_location() find it whoever runs the build.
    env = {"KERNEL_INSTALL_BYPASS": "1", **config.environment, "HOME": "/root"}
    if config.source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(config.source_date_epoch)
    return env


def missing_packages_error(
    error: CommandError, patterns: Iterable[re.Pattern[str]], where: str
) -> BuildError | None:
    """A BuildError naming the packages a package manager could not find, if its output says so."""
    missing: list[str] = []
    for pattern in patterns:
        missing += pattern.findall(error.output)
    if not missing:
        return None
    names = ", ".join(sorted(set(missing)))
    return BuildError(
        f"Packages=: no package named {names} in {where}; check the spelling or add the repository "
        "that provides it (Repositories=)"
    )


def run_package_manager(
    context: Context, argv: list[str], *, root: Path, name: str, missing: Iterable[re.Pattern[str]],
    where: str, apivfs: bool = True, env: dict[str, str] | None = None,
) -> None:
    """Run a package manager on the image at root (with the API file systems unless apivfs is False),
    turning "no such package" output into one clear BuildError naming `where`."""
    if apivfs:
        argv = apivfs_prefix(context, root) + argv
    try:
        run(argv, what=name, env=env if env is not None else package_manager_environment(context.config),
            tools_tree=context.tools_tree)
    except CommandError as e:
        error = missing_packages_error(e, missing, where)
        if error is not None:
            raise error from None
        raise
