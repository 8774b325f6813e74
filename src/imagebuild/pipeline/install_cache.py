"""The install cache: installed trees, content-addressed, so that a warm build only copies a tree.

An entry holds the root (and the build overlay, when there is one) right after "install the distribution
and packages" and the prepare scripts. Its key is Incremental='s key (pipeline/incremental.py: the
distribution, release, architecture, repositories, mirror, package lists, package manager trees, skeleton
trees, prepare scripts and the other install inputs) plus the digest of the repository metadata that this
build's metadata sync fetched: a new package version in the archive makes a new key, and nothing that
only later stages read (extra trees, post-install scripts, output settings) does.

Entries live in <package cache>/installed/ (so `clean -ff` removes them with the packages):

    <name>-<key>/          root/, build-overlay/ and entry.json; complete once it has this name
    <name>-<key>.tmp-*     an entry being written (renamed into place when complete, never read)
    <name>-<key>.lock      shared while a build copies the entry out, exclusive while it is pruned

Builds sharing the cache are safe: an entry is written into a temporary directory and renamed, so a
half-written entry is never used, and an entry in use is never pruned. Only distributions whose
repository metadata the build can digest (the apt-based ones) are cached: for the others, the archive
could change without the key noticing. `--no-install-cache` turns the cache off for one build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.distributions import distribution_for
from imagebuild.installers.apt_distribution import AptDistribution
from imagebuild.log import logger
from imagebuild.pipeline import incremental
from imagebuild.tools.mounts import remove_tree

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

# Entries kept per image name (distribution~release~architecture): the newest, and the one before it
# (another branch, a matrix cell) for a build that goes back.
KEEP_PER_NAME = 2


def cache_directory(config: Config) -> Path:
    return paths.package_cache_directory(config) / "installed"


@dataclass(frozen=True)
class Entry:
    """One cached installed tree (which may not exist yet)."""

    path: Path

    @property
    def root(self) -> Path:
        return self.path / "root"

    @property
    def build_overlay(self) -> Path:
        return self.path / "build-overlay"

    @property
    def lock(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def complete(self) -> bool:
        return (self.path / "entry.json").is_file()


def entry_name(config: Config) -> str:
    image = f"{config.image}~" if config.image else ""
    return f"{image}{config.distribution}~{config.release}~{config.architecture}"


def repository_metadata_digest(context: Context) -> str | None:
    """The digest of the repository metadata the sync fetched; None where the build cannot tell."""
    distribution = distribution_for(context.config)
    if not isinstance(distribution, AptDistribution):
        return None
    return distribution.repository_metadata_digest(context)


def entry_for(context: Context) -> Entry | None:
    """The entry this build would use or write; None if the install cache does not apply to it."""
    if not context.install_cache or not context.config.install_cache:  # --no-install-cache, InstallCache=no
        return None
    metadata = repository_metadata_digest(context)
    if metadata is None:
        return None
    digest = hashlib.sha256(f"{incremental.cache_key(context.config)}\0{metadata}".encode()).hexdigest()
    return Entry(cache_directory(context.config) / f"{entry_name(context.config)}-{digest[:32]}")


@contextlib.contextmanager
def _locked(entry: Entry, mode: int) -> Iterator[bool]:
    """Hold the entry's lock (fcntl.LOCK_SH / LOCK_EX, maybe | LOCK_NB); yields False if not taken."""
    entry.lock.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.lock, "a") as lock:
        try:
            fcntl.flock(lock, mode)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def restore(context: Context, entry: Entry) -> bool:
    """Copy a complete entry into the workspace (reflinks where the file system has them); False if none."""
    with _locked(entry, fcntl.LOCK_SH):
        if not entry.complete():
            return False
        logger.info("Reusing the installed tree %s", entry.path)
        feature = context.config.use_subvolumes
        incremental.copy_contents(entry.root, context.root, feature)
        if entry.build_overlay.is_dir():
            incremental.copy_contents(entry.build_overlay, context.build_overlay, feature)
        # The newest use decides what pruning keeps.
        os.utime(entry.path / "entry.json")
    return True


def save(context: Context, entry: Entry) -> None:
    """Store the installed tree as entry (unless another build just did), then prune old entries."""
    if entry.complete():
        return
    staged = Entry(entry.path.with_name(f"{entry.path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"))
    try:
        feature = context.config.use_subvolumes
        staged.path.mkdir(parents=True)
        incremental.copy_contents(context.root, staged.root, feature)
        if context.build_overlay.is_dir() and any(context.build_overlay.iterdir()):
            incremental.copy_contents(context.build_overlay, staged.build_overlay, feature)
        record = {"key": entry.path.name, "settings": incremental.install_settings(context.config)}
        (staged.path / "entry.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        try:
            staged.path.rename(entry.path)
        except OSError:
            # Another build stored the same entry first (the rename target exists): keep theirs.
            logger.debug("The install cache already has %s", entry.path)
            return
    finally:
        if staged.path.exists():
            remove_tree(staged.path)
    logger.info("Saved the installed tree in the install cache (%s)", entry.path)
    prune(context.config, keep=entry)


def prune(config: Config, *, keep: Entry) -> None:
    """Remove all but the KEEP_PER_NAME newest complete entries of this image name, and stale temporaries."""
    directory = cache_directory(config)
    name = entry_name(config)
    entries = [Entry(p) for p in directory.glob(f"{name}-*") if p.is_dir() and ".tmp-" not in p.name]
    entries = [e for e in entries if e.complete()]
    entries.sort(key=lambda e: (e.path == keep.path, (e.path / "entry.json").stat().st_mtime), reverse=True)
    for old in entries[KEEP_PER_NAME:]:
        with _locked(old, fcntl.LOCK_EX | fcntl.LOCK_NB) as taken:
            if taken:
                # The record goes first: a half-removed entry is no longer complete, so never used.
                (old.path / "entry.json").unlink(missing_ok=True)
                remove_tree(old.path)
                old.lock.unlink(missing_ok=True)
    day = 24 * 3600
    for stale in directory.glob(f"{name}-*.tmp-*"):
        # A temporary a day old belongs to a build that was killed.
        if stale.is_dir() and time.time() - stale.stat().st_mtime > day:
            remove_tree(stale)
