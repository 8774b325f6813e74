"""Configurations under test and their images, built once and reused across pytest sessions and xdist
workers, keyed by their input digest.

An entry of the cache is a directory named by the key with the build's artifacts, a `.json` beside it
(when it was built, how long it took) and two lock files: `.lock` (exclusive while building, so that
workers build an image once between them) and `.use` (shared while a session uses the entry, so that
pruning and refreshing never pull an image from under another session).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from imagebuild.config import Config, Overrides, load_directory
from imagebuild.outputs.naming import artifact_name
from imagebuild.paths import output_directory, user_cache_home
from imagebuild.pipeline import build_image
from imagebuild.pipeline.inputs import config_digest
from pytest_mkosi.checks.reproducible import Difference, compare_artifacts
from pytest_mkosi.root_disks import SUFFIXES as ROOT_DISK_SUFFIXES
from pytest_mkosi.root_disks import forget_root_disk, root_disk_path

if TYPE_CHECKING:
    from pytest_mkosi.machine.tpm import PcrValue

DAY = 24 * 3600
REFRESH_CHOICES = ("never", "daily", "always")


def resolve_configs(directory: Path, overrides: Overrides) -> list[Config]:
    """The images of the configuration in `directory` in build order, `overrides` winning over the files."""
    return load_directory(directory, overrides)


def default_cache_root() -> Path:
    return user_cache_home() / "pytest-mkosi" / "images"


@dataclass(frozen=True, eq=False)
class BuiltImage:
    """A built image as the tests see it; `==` means bit-identical outputs (see checks/reproducible.py)."""

    config: Config
    path: Path  # the tree (Format=directory) or the image file
    key: str  # digest of the config and its inputs
    reused: bool  # True when a previous session had built it already
    build_seconds: float
    # Every artifact of the build (the main one, manifests, checksums ...).
    artifacts: tuple[Path, ...] = ()
    # Seconds since the image was built.
    age_seconds: float = 0.0
    # Why it was (re)built or reused, for the terminal line.
    note: str = ""

    def differences(self, other: BuiltImage) -> list[Difference]:
        return list(compare_artifacts(self.artifacts or (self.path,), other.artifacts or (other.path,)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BuiltImage):
            return NotImplemented
        return not self.differences(other)

    __hash__ = None  # type: ignore[assignment]

    def expected_pcrs(self, bank: str = "sha256", phases: Sequence[str] | None = None) -> dict[int, PcrValue]:
        """The PCR values predicted from the built artifacts (today PCR 11, from the image's UKI), after the
        boot phases `phases` (default: all of a booted system, see imagebuild.boot.pcr)."""
        from pytest_mkosi.checks.pcr import expected_pcrs

        return expected_pcrs(self.config, self.path, bank, phases)


def describe_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} days"


@dataclass
class ImageCache:
    root: Path = field(default_factory=default_cache_root)
    # never | daily | always: how old a cached image may be before it is built again.
    refresh: str = "daily"
    # When this session started (an xdist worker gets the controller's): refresh=always rebuilds what
    # was built before it, so that the workers of one session still build an image once.
    session_started: float = field(default_factory=time.time)
    # Open `.use` files of the entries this session holds (shared flocks, released when closed).
    _held: dict[str, int] = field(default_factory=dict)

    def entry(self, key: str) -> Path:
        return self.root / key[:24]

    # ---- keys -------------------------------------------------------------------------------

    def key(self, config: Config, dependencies: Mapping[str, BuiltImage] | None = None) -> str:
        """config_digest, except that base trees which are another image's output count by that
        image's key (its content is what its key describes) instead of being read."""
        mapped = _base_tree_images(config, dependencies or {})
        if not mapped:
            return config_digest(config)
        rest = [p for p in config.base_trees if Path(p) not in mapped]
        digest = hashlib.sha256(config_digest(dataclasses.replace(config, base_trees=rest)).encode())
        for path in config.base_trees:
            if Path(path) in mapped:
                digest.update(f"\0base {mapped[Path(path)].key}".encode())
        return digest.hexdigest()

    # ---- use locks ----------------------------------------------------------------------------

    def hold(self, entry: Path) -> None:
        """Take a shared lock on entry for the rest of this session (or until release_all)."""
        if entry.name in self._held:
            return
        fd = os.open(f"{entry}.use", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._held[entry.name] = fd

    def release_all(self) -> None:
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()

    def in_use_by_others(self, entry: Path) -> bool:
        """Whether another session holds entry (this session's own hold does not count)."""
        mine = self._held.pop(entry.name, None)
        if mine is not None:
            os.close(mine)  # flock conflicts between our own descriptors too: let go, test, take again
        try:
            fd = os.open(f"{entry}.use", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            finally:
                os.close(fd)
            return False
        finally:
            if mine is not None:
                self.hold(entry)

    # ---- lookup and build ---------------------------------------------------------------------

    def _meta(self, entry: Path) -> dict[str, object]:
        try:
            data = json.loads(Path(f"{entry}.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def stale_reason(self, entry: Path, *, rebuild: bool = False) -> str | None:
        """Why a cached entry must be built again (None: reuse it)."""
        built = self._meta(entry).get("built_at")
        built_at = float(built) if isinstance(built, int | float) else entry.stat().st_mtime
        age = time.time() - built_at
        if rebuild and built_at < self.session_started:
            return "--mkosi-rebuild"
        if self.refresh == "always" and built_at < self.session_started:
            return f"the cached image was built {describe_age(age)} ago (--mkosi-refresh=always)"
        if self.refresh == "daily" and age > DAY:
            return f"the cached image was {describe_age(age)} old (--mkosi-refresh=daily)"
        return None

    def lookup(self, config: Config, dependencies: Mapping[str, BuiltImage] | None = None) -> Path | None:
        """The cached entry for config if there is one that is fresh enough, without building."""
        entry = self.entry(self.key(config, dependencies))
        if entry.is_dir() and self.stale_reason(entry) is None:
            return entry
        return None

    def get(self, config: Config, *, rebuild: bool = False,
            dependencies: Mapping[str, BuiltImage] | None = None) -> BuiltImage:
        """The cached image for config, built first if it is missing or too old.

        The lock makes concurrent sessions and xdist workers build a given image once between them.
        """
        deps = dependencies or {}
        key = self.key(config, deps)
        entry = self.entry(key)
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{entry}.lock"):
            reason = "not cached yet"
            if entry.is_dir():
                stale = self.stale_reason(entry, rebuild=rebuild)
                if stale is None or self.in_use_by_others(entry):
                    return self._reuse(config, entry, key, stale)
                reason = stale
            return self._build(config, entry, key, deps, reason)

    def _reuse(self, config: Config, entry: Path, key: str, stale: str | None) -> BuiltImage:
        self.hold(entry)
        os.utime(entry)  # marks it as recently used (pruning removes the least recently used first)
        meta = self._meta(entry)
        built = meta.get("built_at")
        age = time.time() - (float(built) if isinstance(built, int | float) else entry.stat().st_mtime)
        artifacts = tuple(sorted(entry.iterdir()))
        main = main_artifact(entry, config, meta.get("main"))
        note = f"built {describe_age(age)} ago"
        if stale is not None:
            note += f"; not rebuilt although {stale}: another session is using it"
        return BuiltImage(config, main, key, True, 0.0, artifacts, age, note)

    def _build(self, config: Config, entry: Path, key: str, deps: Mapping[str, BuiltImage],
               reason: str) -> BuiltImage:
        started = time.monotonic()
        building = self.root / f".{entry.name}.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        try:
            result = build_image(self.build_config(config, deps, building), force=1)
            forget_root_disk(entry)  # made from the tree this build replaces
            if entry.exists():
                _remove(entry, self.root)
            os.rename(building, entry)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        seconds = time.monotonic() - started
        Path(f"{entry}.json").write_text(json.dumps(
            {"built_at": time.time(), "build_seconds": seconds, "main": result.path.name,
             "directory": str(config.directory), "image": config.image}) + "\n")
        self.hold(entry)
        artifacts = tuple(sorted(entry.iterdir()))
        return BuiltImage(config, entry / result.path.name, key, False, seconds, artifacts, 0.0,
                          f"rebuilt: {reason}" if reason != "not cached yet" else "")

    @staticmethod
    def build_config(config: Config, deps: Mapping[str, BuiltImage], output: Path) -> Config:
        """config as built into output, its base trees that are other images' outputs taken from the cache."""
        mapped = _base_tree_images(config, deps)
        base_trees = [mapped[Path(p)].path if Path(p) in mapped else Path(p) for p in config.base_trees]
        return dataclasses.replace(config, output_directory=output, base_trees=base_trees)

    def get_all(self, configs: Sequence[Config], *, rebuild: bool = False) -> dict[str, BuiltImage]:
        """Every image of a configuration in build order (dependencies first), by image name ("main"
        for a configuration without mkosi.images/)."""
        built: dict[str, BuiltImage] = {}
        for config in configs:
            built[config.image or "main"] = self.get(config, rebuild=rebuild, dependencies=built)
        return built

    # ---- pruning ------------------------------------------------------------------------------

    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def prune(self, max_bytes: int) -> list[Path]:
        """Remove least recently used entries until the cache holds at most max_bytes; entries that a
        session uses (this one's included) or that are being built are kept. Returns what was removed."""
        sizes = {e: tree_bytes(e) + _file_bytes(root_disk_path(e)) for e in self.entries()}
        total = sum(sizes.values())
        removed: list[Path] = []
        for entry in sorted(sizes, key=lambda e: e.stat().st_mtime):
            if total <= max_bytes:
                break
            if entry.name in self._held or self.in_use_by_others(entry):
                continue
            try:
                with FileLock(f"{entry}.lock", timeout=0):
                    forget_root_disk(entry)
                    _remove(entry, self.root)
            except Timeout:
                continue  # being built right now
            for suffix in (".json", ".use", ".lock", *ROOT_DISK_SUFFIXES):
                Path(f"{entry}{suffix}").unlink(missing_ok=True)
            total -= sizes[entry]
            removed.append(entry)
        return removed


def main_artifact(entry: Path, config: Config, recorded: object) -> Path:
    """The main artifact of a cached entry: the one its build recorded, else the format's artifact name.

    Not `<Output=>` alone: for the file formats that is the build's symlink (or nothing), not the image
    (disk-example, not disk-example.raw), and entries from before the record was kept have no record."""
    for name in (recorded, artifact_name(config)):
        if isinstance(name, str) and name and (entry / name).exists() and not (entry / name).is_symlink():
            return entry / name
    return entry / artifact_name(config)


def tree_bytes(root: Path) -> int:
    """Disk usage below root (blocks, not apparent sizes; hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            st = os.lstat(os.path.join(directory, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512  # allocated, not apparent: the ext4 file is sparse
    except FileNotFoundError:
        return 0


def _remove(entry: Path, root: Path) -> None:
    # Renamed first, so nobody ever sees a half-removed entry under its name.
    trash = root / f".{entry.name}.removing-{os.getpid()}"
    os.rename(entry, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _base_tree_images(config: Config, dependencies: Mapping[str, BuiltImage]) -> dict[Path, BuiltImage]:
    """BaseTrees= entries that name another image's output (BaseTrees=%O/base with the shared output
    directory of mkosi.images/), mapped to that image as built into the cache."""
    if not config.base_trees or not dependencies:
        return {}
    outputs: dict[Path, BuiltImage] = {}
    for image in dependencies.values():
        directory = output_directory(image.config).absolute()
        for name in {image.config.output, artifact_name(image.config)}:
            outputs[directory / name] = image
    return {Path(p): outputs[Path(p).absolute()] for p in config.base_trees if Path(p).absolute() in outputs}
