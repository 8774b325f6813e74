"""A digest of everything a build reads: the resolved config and the content of its input files.

Two configs with the same digest build the same image, so a cached image can be reused by digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imagebuild

if TYPE_CHECKING:
    from imagebuild.config import Config

# Keys of the resolved config that say where things go or are random per run, not what is built.
NOT_CONTENT = {
    "OutputDirectory", "WorkspaceDirectory", "CacheDirectory", "PackageCacheDirectory", "BuildDirectory",
    "Seed", "QemuVsockConnectionId",
}


def input_paths(config: Config) -> list[Path]:
    """Files and trees whose content goes into the image."""
    paths: list[Path] = []
    for trees in (config.skeleton_trees, config.extra_trees, config.package_manager_trees):
        paths += [Path(tree.source) for tree in trees]
    paths += [Path(p) for p in config.base_trees]
    for scripts in (config.sync_scripts, config.prepare_scripts, config.build_scripts,
                    config.postinst_scripts, config.finalize_scripts):
        paths += [Path(p) for p in scripts]
    paths += [Path(p) for p in config.environment_files]
    return paths


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)


def _walk(root: Path) -> Iterable[Path]:
    if not root.is_dir() or root.is_symlink():
        yield root
        return
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(directory)
        yield base
        for name in sorted(filenames):
            yield base / name
        for name in dirnames:
            if (base / name).is_symlink():
                yield base / name


def hash_tree(digest: Any, root: Path) -> None:
    """Feed names, types, modes, link targets and file contents below root into digest."""
    digest.update(f"tree {root}\0".encode())
    for path in _walk(root):
        try:
            st = path.lstat()
        except FileNotFoundError:
            digest.update(f"missing {path}\0".encode())
            continue
        rel = os.path.relpath(path, root)
        digest.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode):o}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            digest.update(os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            _hash_file(digest, path)


def config_digest(config: Config) -> str:
    """sha256 over imagebuild's version, the resolved config and the content of its inputs."""
    from imagebuild.config import to_json_dict

    digest = hashlib.sha256()
    digest.update(f"imagebuild {imagebuild.__version__}\0".encode())
    settings = {k: v for k, v in to_json_dict(config).items() if k not in NOT_CONTENT}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in input_paths(config):
        hash_tree(digest, path)
    return digest.hexdigest()
