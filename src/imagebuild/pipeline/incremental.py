"""Incremental=: a cache of the installed image (after the prepare scripts), reused by the next build.

The cache is CacheDirectory=/<image~>distribution~release~arch.cache (the root), .build.cache (the
build overlay, when there is one) and .json, written last, which records the key of what the image was
installed from. The key covers every setting that goes into the install stages and the content of the
trees and scripts they read; anything else (extra trees, post-install scripts, output settings) may change
and the cache is still used. -ff removes the cache before building.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import imagebuild
from imagebuild import paths
from imagebuild.log import logger
from imagebuild.pipeline.inputs import hash_tree
from imagebuild.tools.mounts import remove_tree
from imagebuild.tools.run import run

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

# Settings outside [Distribution] that the install stages (steps 5-10) read.
INSTALL_SETTINGS = frozenset({
    "Packages", "BuildPackages", "PackageDirectories", "WithRecommends", "WithDocs", "BaseTrees",
    "SkeletonTrees", "PrepareScripts", "Environment", "EnvironmentFiles", "Bootable", "SourceDateEpoch",
    "ToolsTree", "ToolsTreeDistribution", "ToolsTreeRelease", "ToolsTreeMirror", "ToolsTreeRepositories",
    "ToolsTreePackageManagerTrees", "ToolsTreePackages", "WithNetwork",
})

# Variables the config layer puts into Environment= from settings that do not change what is installed.
DERIVED_ENVIRONMENT = frozenset({"IMAGE_ID", "IMAGE_VERSION"})


def install_settings(config: Config) -> dict[str, object]:
    from imagebuild.config import to_json_dict
    from imagebuild.config.settings import SETTINGS

    wanted = INSTALL_SETTINGS | {s.name for s in SETTINGS if s.section == "Distribution"}
    settings = {k: v for k, v in to_json_dict(config).items() if k in wanted}
    if isinstance(settings.get("Environment"), dict):
        # Derived from ImageId=/ImageVersion=: a new version (bump, -B) must not throw the cache away.
        settings["Environment"] = {k: v for k, v in settings["Environment"].items() if k not in DERIVED_ENVIRONMENT}
    return settings


def install_inputs(config: Config) -> list[Path]:
    """Files and trees the install stages read."""
    inputs = [Path(t.source) for t in (*config.skeleton_trees, *config.package_manager_trees)]
    inputs += [Path(p) for p in (*config.base_trees, *config.prepare_scripts, *config.environment_files,
                                 *config.package_directories)]
    return inputs


def cache_key(config: Config) -> str:
    digest = hashlib.sha256()
    digest.update(f"imagebuild {imagebuild.__version__}\0".encode())
    digest.update(json.dumps(install_settings(config), sort_keys=True, default=str).encode())
    for path in install_inputs(config):
        hash_tree(digest, path)
    return digest.hexdigest()


def _cache_paths(config: Config) -> tuple[Path, Path, Path] | None:
    prefix = paths.incremental_cache_prefix(config)
    if prefix is None:
        return None
    return (prefix.with_name(prefix.name + ".cache"), prefix.with_name(prefix.name + ".build.cache"),
            prefix.with_name(prefix.name + ".json"))


def cache_files(config: Config) -> list[Path]:
    """What the incremental cache of this image consists of (whether it exists or not)."""
    found = _cache_paths(config)
    return list(found) if found is not None else []


def copy_contents(source: Path, destination: Path) -> None:
    """cp -a with reflinks where the file system has them (never shutil.copytree on an image root)."""
    destination.mkdir(parents=True, exist_ok=True)
    run(["cp", "-a", "--reflink=auto", f"{source}/.", os.fspath(destination)], what=f"copying {source}")


def usable(config: Config) -> bool:
    """Whether a cached image matches this config (restore() copies it in); logs why not."""
    found = _cache_paths(config)
    if not config.incremental or found is None:
        return False
    root, _, record = found
    try:
        recorded = json.loads(record.read_text())
    except (OSError, ValueError):
        logger.info("No cached image yet: installing (Incremental=yes will cache it in %s)", root.parent)
        return False
    if recorded.get("key") != cache_key(config) or not root.is_dir():
        before = recorded.get("settings", {})
        now = json.loads(json.dumps(install_settings(config), default=str))
        changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
        what = ", ".join(f"{k}=" for k in changed) if changed else "the content of skeleton trees or scripts"
        logger.info("The cached image is out of date (%s changed): installing again", what)
        return False
    return True


def restore(context: Context) -> None:
    """Put the cached image into context.root; only after usable() said there is one to reuse."""
    found = _cache_paths(context.config)
    assert found is not None
    root, overlay, _ = found
    logger.info("Reusing the cached image %s", root)
    copy_contents(root, context.root)
    if overlay.is_dir():
        copy_contents(overlay, context.build_overlay)


def drop(config: Config) -> None:
    """Remove the cached image (record first, so that a half-removed cache is never used)."""
    for path in reversed(cache_files(config)):
        if path.is_dir() and not path.is_symlink():
            remove_tree(path)
        else:
            path.unlink(missing_ok=True)


def save(context: Context) -> None:
    config = context.config
    found = _cache_paths(config)
    if not config.incremental or found is None:
        return
    root, overlay, record = found
    root.parent.mkdir(parents=True, exist_ok=True)
    drop(config)
    staged_root = root.with_name(root.name + ".new")
    staged_overlay = overlay.with_name(overlay.name + ".new")
    for stale in (staged_root, staged_overlay):
        if stale.exists():
            shutil.rmtree(stale)
    copy_contents(context.root, staged_root)
    if context.build_overlay.is_dir() and any(context.build_overlay.iterdir()):
        copy_contents(context.build_overlay, staged_overlay)
        staged_overlay.rename(overlay)
    staged_root.rename(root)
    staged_record = record.with_name(record.name + ".new")
    staged_record.write_text(json.dumps({"key": cache_key(config), "settings": install_settings(config)},
                                        indent=2, sort_keys=True, default=str) + "\n")
    staged_record.rename(record)
