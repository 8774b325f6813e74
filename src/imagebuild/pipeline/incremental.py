"""Incremental=: a cache of the installed image (after the prepare scripts), reused by the next build.

The cache is CacheDirectory=/<image~>distribution~release~arch.cache (the root), .build.cache (the
build overlay, when there is one) and .json, written last, which records the key of what the image was
installed from. The key covers every setting of effect INSTALL in the settings table (what the install
stages read) and the content of the files and trees they name; anything else (extra trees, post-install
scripts, output settings) may change and the cache is still used. -ff removes the cache before building.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.config.enums import ConfigFeature
from imagebuild.config.setting import Effect
from imagebuild.log import logger
from imagebuild.pipeline.inputs import Inputs, digest_of, gather
from imagebuild.tools.mounts import remove_tree
from imagebuild.tools.subvolumes import copy_tree

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

# Variables the config layer puts into Environment= from settings that do not change what is installed.
DERIVED_ENVIRONMENT = frozenset({"IMAGE_ID", "IMAGE_VERSION"})


def install_inputs(config: Config) -> Inputs:
    """The settings of effect INSTALL (from the settings table) and the files and trees they name."""
    found = gather(config, {Effect.INSTALL})
    environment = found.settings.get("Environment")
    if isinstance(environment, dict):
        # Derived from ImageId=/ImageVersion=: a new version (bump, -B) must not throw the cache away.
        found.settings["Environment"] = {k: v for k, v in environment.items() if k not in DERIVED_ENVIRONMENT}
    return found


def install_settings(config: Config) -> dict[str, object]:
    return install_inputs(config).settings


def cache_key(config: Config) -> str:
    return digest_of(install_inputs(config))


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


def copy_contents(source: Path, destination: Path, use_subvolumes: ConfigFeature = ConfigFeature.disabled) -> None:
    """cp -a with reflinks where the file system has them (never shutil.copytree on an image root); a btrfs
    snapshot instead when source is a subvolume and UseSubvolumes= allows it."""
    copy_tree(source, destination, use_subvolumes)


def usable(config: Config, *, log: bool = True) -> bool:
    """Whether a cached image matches this config (restore() copies it in); logs why not (if log)."""
    found = _cache_paths(config)
    if not config.incremental or found is None:
        return False
    root, _, record = found
    try:
        recorded = json.loads(record.read_text())
    except (OSError, ValueError):
        if log:
            logger.info("No cached image yet: installing (Incremental=yes will cache it in %s)", root.parent)
        return False
    if recorded.get("key") != cache_key(config) or not root.is_dir():
        before = recorded.get("settings", {})
        now = install_settings(config)
        changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
        what = ", ".join(f"{k}=" for k in changed) if changed else "the content of skeleton trees or scripts"
        if log:
            logger.info("The cached image is out of date (%s changed): installing again", what)
        return False
    return True


def restore(context: Context) -> None:
    """Put the cached image into context.root; only after usable() said there is one to reuse."""
    found = _cache_paths(context.config)
    assert found is not None
    root, overlay, _ = found
    logger.info("Reusing the cached image %s", root)
    feature = context.config.use_subvolumes
    copy_contents(root, context.root, feature)
    if overlay.is_dir():
        copy_contents(overlay, context.build_overlay, feature)


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
            remove_tree(stale)
    copy_contents(context.root, staged_root, config.use_subvolumes)
    if context.build_overlay.is_dir() and any(context.build_overlay.iterdir()):
        copy_contents(context.build_overlay, staged_overlay, config.use_subvolumes)
        staged_overlay.rename(overlay)
    staged_root.rename(root)
    staged_record = record.with_name(record.name + ".new")
    staged_record.write_text(json.dumps({"key": cache_key(config), "settings": install_settings(config)},
                                        indent=2, sort_keys=True, default=str) + "\n")
    staged_record.rename(record)
