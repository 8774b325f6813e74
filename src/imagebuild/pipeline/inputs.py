"""Digests of what a build reads, derived from the settings table: the image cache key (config_digest,
used by pytest_mkosi's image cache) and Incremental='s key (pipeline/incremental.py).

A digest covers imagebuild's version and code (builder_digest: a changed builder may build another image
from the same config, so a cached result of an older one is stale), the value of every setting whose effect
(Setting.effect) is wanted and whose value matters to this build (Setting.matters), and the content of every
file and tree such a setting names (Files.CONTENT). Paths inside the configuration tree are named relative
to it, so that a copy of the tree elsewhere has the same digest; paths outside it keep their names. Both are
hashed by content. The places a build writes into (Files.LOCATION: outputs, caches, workspace) are skipped
inside such trees.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imagebuild
from imagebuild import paths
from imagebuild.config.setting import Effect, Files

if TYPE_CHECKING:
    from imagebuild.config import Config

# What goes into the image cache key: everything that changes the image.
IMAGE_EFFECTS = frozenset({Effect.INSTALL, Effect.IMAGE})

# Where images of mkosi.images/ are defined; their tree is the directory above.
_IMAGE_DIRECTORIES = ("mkosi.images", "mkosi.presets")


def tree_root(config: Config) -> Path:
    """The configuration tree the image comes from (the -C directory, also for images in mkosi.images/)."""
    directory = Path(config.directory)
    if config.image is not None and directory.parent.name in _IMAGE_DIRECTORIES:
        return directory.parent.parent
    return directory


Namer = Callable[[Path], str]


def namer_for(config: Config) -> Namer:
    """Names paths inside the configuration tree relative to it ("./mkosi.extra"), others as they are."""
    root = tree_root(config)
    bases = dict.fromkeys([Path(os.path.realpath(root)), root.absolute()])

    def name(path: Path) -> str:
        for base in bases:
            if path.is_relative_to(base):
                return "./" + path.relative_to(base).as_posix()
        return str(path)

    return name


def host_paths(value: Any) -> list[Path]:
    """The files and directories on the build host that a setting's value names.

    Targets of trees are paths inside the image, and relative paths are names (a key in an engine), so
    neither is a host path.
    """
    from imagebuild.config import QemuDrive, TreeSpec

    if isinstance(value, Path):
        return [value] if value.is_absolute() else []
    if isinstance(value, TreeSpec):
        return host_paths(value.source)
    if isinstance(value, QemuDrive):
        return host_paths(value.directory)
    if isinstance(value, list | tuple):
        return [p for v in value for p in host_paths(v)]
    if isinstance(value, dict):
        return [p for v in value.values() for p in host_paths(v)]
    return []


def portable(value: Any, name: Namer) -> Any:
    """A JSON-ready value (as in `summary --json`) in which host paths are named by `name`."""
    from imagebuild.config import QemuDrive, TreeSpec
    from imagebuild.config.render import encode

    if isinstance(value, Path):
        return name(value) if value.is_absolute() else str(value)
    if isinstance(value, TreeSpec):
        return {"source": portable(value.source, name), "target": encode(value.target)}
    if isinstance(value, QemuDrive):
        return {**encode(value), "directory": portable(value.directory, name)}
    if isinstance(value, list | tuple):
        return [portable(v, name) for v in value]
    if isinstance(value, dict):
        return {str(k): portable(v, name) for k, v in value.items()}
    return encode(value)


@dataclass(frozen=True)
class Inputs:
    """What a digest covers: setting values (by setting name) and files whose content is read."""

    settings: dict[str, Any]
    # (portable name, path) of every file or tree to hash.
    files: list[tuple[str, Path]]
    # Places the build writes into: skipped when they lie inside one of the files' trees.
    skip: frozenset[Path]


def build_places(config: Config) -> frozenset[Path]:
    """Where this build writes: the values of Files.LOCATION settings and the defaults used without them."""
    from imagebuild.config.settings import SETTINGS

    found = {paths.output_directory(config), paths.package_cache_directory(config), paths.workspace_parent(config)}
    for s in SETTINGS:
        if s.files is Files.LOCATION:
            found.update(host_paths(getattr(config, s.attr)))
    if config.build_directory is not None:
        # BuildDirectory= as configured is the parent of the <distribution>~<release>~<arch> one builds use.
        found.add(Path(config.build_directory).parent)
    return frozenset(Path(os.path.realpath(p)) for p in found)


def gather(config: Config, effects: Collection[Effect]) -> Inputs:
    """The values and files of the settings with one of `effects` that matter to this build."""
    from imagebuild.config.settings import SETTINGS

    name = namer_for(config)
    settings: dict[str, Any] = {}
    files: list[tuple[str, Path]] = []
    for s in SETTINGS:
        if s.effect_on(config) not in effects or not s.matters_to(config):
            continue
        value = getattr(config, s.attr)
        settings[s.name] = portable(value, name)
        if s.files is Files.CONTENT:
            files += [(name(p), p) for p in host_paths(value)]
    return Inputs(settings, files, build_places(config))


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)


def _walk(root: Path, skip: Collection[Path]) -> Iterable[Path]:
    if not root.is_dir() or root.is_symlink():
        yield root
        return
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory)
        dirnames[:] = sorted(d for d in dirnames if base / d not in skip)
        yield base
        for name in sorted(filenames):
            yield base / name
        for name in dirnames:
            if (base / name).is_symlink():
                yield base / name


def hash_tree(digest: Any, root: Path, name: str, skip: Collection[Path] = ()) -> None:
    """Feed names, types, modes, link targets and file contents below root into digest.

    root is recorded as `name`, so that the same content at another place can give the same digest;
    directories in skip (absolute, real paths) are left out.
    """
    digest.update(f"tree {name}\0".encode())
    real = Path(os.path.realpath(root))
    for path in _walk(real, skip):
        rel = os.path.relpath(path, real)
        try:
            st = path.lstat()
        except FileNotFoundError:
            digest.update(f"missing {rel}\0".encode())
            continue
        digest.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode):o}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            digest.update(os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            _hash_file(digest, path)


def settings_json(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True)


# Parts of imagebuild that only run machines, never build: their changes keep the caches.
_RUNTIME_ONLY = ("launch",)


@functools.cache
def builder_digest() -> str:
    """sha256 over the source of the imagebuild that is running (its version alone does not change between
    development commits), without the parts that only run machines."""
    package = Path(imagebuild.__file__).parent
    digest = hashlib.sha256(f"imagebuild {imagebuild.__version__}\0".encode())
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if path.is_file() and "__pycache__" not in rel.parts and rel.parts[0] not in _RUNTIME_ONLY \
                and path.suffix != ".pyc":
            digest.update(f"{rel}\0".encode())
            _hash_file(digest, path)
    return digest.hexdigest()


def digest_of(inputs: Inputs) -> str:
    """sha256 over imagebuild's code, the settings and the content of the files of inputs."""
    digest = hashlib.sha256()
    digest.update(f"imagebuild {builder_digest()}\0".encode())
    digest.update(settings_json(inputs.settings).encode())
    for name, path in inputs.files:
        hash_tree(digest, path, name, inputs.skip)
    return digest.hexdigest()


def config_digest(config: Config) -> str:
    """The image cache key: equal for configs that build the same image, wherever their tree lies."""
    inputs = gather(config, IMAGE_EFFECTS)
    inputs.settings["Image"] = config.image
    return digest_of(inputs)
