"""The persistent apt package cache: downloaded .debs and repository lists, kept between builds.

Layout below the package cache directory, one subdirectory per distribution:

    <distribution>/archives/                  .deb files of every suite and architecture
    <distribution>/lists~<suite>~<arch>/      the repository lists of the last metadata sync
    <distribution>/.lock                      held while anything is copied into or out of the cache

Builds never work in the cache itself: files are hard-linked (or copied, across file systems) into the
build's tree before apt runs and back out after it, under the lock, so two builds of the same suite at once
cannot see each other's half-written lists or archives. Only finished .deb files travel between a build and
the archive cache: apt's archives/lock and partial/ are per build (a shared hard-linked lock would make two
concurrent builds' apt refuse each other with "Could not get lock").
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from imagebuild.tools.run import run

ARCHIVES = "/var/cache/apt/archives"
LISTS = "/var/lib/apt/lists"


def same_filesystem(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def copy_command(src: str, dst: str, *, link: bool) -> str:
    """Shell that copies the contents of src into dst without replacing files dst has already."""
    flags = "-aln" if link else "-an"
    return f"mkdir -p {dst} && if [ -d {src} ]; then cp {flags} {src}/. {dst}/; fi"


def copy_debs_command(src: str, dst: str, *, link: bool) -> str:
    """Shell that copies the .deb files directly in src into dst, keeping those dst has already.

    Nothing else is carried: not apt's lock, not partial/ (half-downloaded files of that build).
    """
    flags = "-aln" if link else "-an"
    return (f"mkdir -p {dst} && if [ -d {src} ]; then "
            f"find {src} -mindepth 1 -maxdepth 1 -type f -name '*.deb' -exec cp {flags} -t {dst} -- {{}} +; fi")


def replace_command(src: str, dst: str) -> str:
    """Shell that makes dst a copy of src (apt's lock and partial downloads left out), replacing dst whole.

    Replacing rather than merging lets suites that are no longer configured drop out of the cache.
    """
    new = shlex.quote(f"{dst}.new")
    target = shlex.quote(dst)
    return " && ".join([
        f"rm -rf {new}",
        copy_command(src, new, link=False),
        f"rm -rf {new}/lock {new}/partial {new}/auxfiles {target}",
        f"mv {new} {target}",
    ])


@dataclass(frozen=True)
class PackageCache:
    """One distribution's part of the package cache."""

    directory: Path

    @property
    def archives(self) -> Path:
        return self.directory / "archives"

    def lists(self, suite: str, architecture: str) -> Path:
        return self.directory / f"lists~{suite}~{architecture}"

    @property
    def lock(self) -> Path:
        return self.directory / ".lock"

    def prepare(self) -> None:
        self.archives.mkdir(parents=True, exist_ok=True)
        self.lock.touch(exist_ok=True)

    def locked(self, script: str) -> str:
        """Shell that runs script (which may use $1) holding the cache's lock (waiting for other builds)."""
        return f"flock {shlex.quote(str(self.lock))} sh -c {shlex.quote(script)} sh \"$1\""

    def link_archives_into(self, root: str, *, link: bool) -> str:
        """Shell: the cached .debs into root's apt archive directory ($1 may stand for the root)."""
        return copy_debs_command(shlex.quote(str(self.archives)), f"{root}{ARCHIVES}", link=link)

    def save_archives_from(self, root: str, *, link: bool) -> str:
        """Shell: the .debs apt left in root's archive directory into the cache.

        Also drops a lock and partial/ that caches written by earlier versions hold, which nothing uses.
        """
        cached = shlex.quote(str(self.archives))
        return (copy_debs_command(f"{root}{ARCHIVES}", cached, link=link)
                + f" && rm -rf {cached}/lock {cached}/partial")


def run_locked(cache: PackageCache, script: str, root: Path, *, what: str) -> None:
    """Run a cache script (see PackageCache.locked) for a tree outside mmdebstrap."""
    cache.prepare()
    run(["sh", "-c", cache.locked(script), "sh", os.fspath(root)], what=what)


def restore_lists(cache: PackageCache, suite: str, architecture: str, destination: Path) -> bool:
    """Copy the cached lists of a suite into destination; False if the cache has none."""
    source = cache.lists(suite, architecture)
    here = '"$1"'
    script = f"rm -rf {here} && " + copy_command(shlex.quote(str(source)), here, link=False)
    run_locked(cache, script, destination, what="restoring the cached repository lists")
    return any(p.is_file() for p in destination.iterdir())


def save_lists(cache: PackageCache, suite: str, architecture: str, source: Path) -> None:
    """Replace the cached lists of a suite with those in source."""
    script = replace_command('"$1"', str(cache.lists(suite, architecture)))
    run_locked(cache, script, source, what="saving the repository lists into the package cache")


def link_archives(cache: PackageCache, root: Path) -> None:
    """Make the cached .debs available to an apt that works on root."""
    cache.prepare()
    link = same_filesystem(cache.archives, root)
    run_locked(cache, cache.link_archives_into('"$1"', link=link), root, what="linking the package cache in")


def save_archives(cache: PackageCache, root: Path) -> None:
    """Keep what apt downloaded into root, then empty root's archive directory."""
    cache.prepare()
    link = same_filesystem(cache.archives, root)
    run_locked(cache, cache.save_archives_from('"$1"', link=link), root, what="saving downloaded packages")
    archives = root / ARCHIVES.lstrip("/")
    run(["find", os.fspath(archives), "-mindepth", "1", "-delete"], what="emptying apt's archive directory")
