"""A local apt repository of the .deb files in PackageDirectories= and $PACKAGEDIR (the build scripts' packages).

It is a flat repository (`deb [trusted=yes] copy:/path ./`) in the workspace, indexed with dpkg-scanpackages.
copy: rather than file: makes apt copy the packages into the root's archive directory, where the image's
dpkg (run in a chroot) can read them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.installers.apt_repository import AptRepository
from imagebuild.tools.run import find_tool

if TYPE_CHECKING:
    from imagebuild.context import Context


def _debs(directories: Iterable[Path]) -> list[Path]:
    found = []
    for directory in directories:
        if not directory.is_dir():
            continue
        found += sorted(p for p in directory.rglob("*.deb") if p.is_file())
    return found


def _release_file(repository: Path) -> str:
    """A minimal Release file, so that apt treats the flat repository as a complete one."""
    # A fixed date: the index changes only when the packages do.
    lines = ["Origin: imagebuild", "Label: imagebuild local packages", "Suite: local",
             "Date: Thu, 01 Jan 1970 00:00:00 UTC", "SHA256:"]
    for name in ("Packages",):
        data = (repository / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    return "\n".join(lines) + "\n"


def local_repository(directory: Path, sources: list[Path], *, setting: str) -> AptRepository | None:
    """Index the .debs of `sources` in `directory`; None when there are none."""
    for source in sources:
        if not source.is_dir():
            raise BuildError(f"{setting}={source}: no such directory")
    debs = _debs(sources)
    if not debs:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.deb"):
        old.unlink()
    for deb in debs:
        target = directory / deb.name
        if target.exists():
            continue
        try:
            os.link(deb, target)
        except OSError:
            target.write_bytes(deb.read_bytes())
    scanner = find_tool("dpkg-scanpackages", package="dpkg-dev")
    # The index goes to stdout, dpkg-scanpackages' notes to stderr: run() would mix them.
    result = subprocess.run([scanner, "--multiversion", "."], cwd=directory, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise BuildError(f"{setting}: dpkg-scanpackages could not index the packages: {result.stderr.strip()}")
    (directory / "Packages").write_text(result.stdout)
    (directory / "Release").write_text(_release_file(directory))
    return AptRepository(f"copy:{directory}", "./", (), ("trusted=yes",))


def build_local_repository(context: Context) -> AptRepository | None:
    """The local repository of a build: PackageDirectories= and, once it exists, $PACKAGEDIR."""
    config = context.config
    sources = [*config.package_directories, *([context.packages_dir] if context.packages_dir.is_dir() else [])]
    return local_repository(context.workspace / "apt" / "local", sources, setting="PackageDirectories")
