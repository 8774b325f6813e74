"""Configurations under test and their images, built once and reused across pytest sessions and xdist
workers, keyed by their input digest."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from imagebuild.config import Config, Overrides, load_directory
from imagebuild.paths import user_cache_home
from imagebuild.pipeline import build_image
from imagebuild.pipeline.inputs import config_digest


def resolve_configs(directory: Path, overrides: Overrides) -> list[Config]:
    """The images of the configuration in `directory` in build order, `overrides` winning over the files."""
    return load_directory(directory, overrides)


def default_cache_root() -> Path:
    return user_cache_home() / "pytest-mkosi" / "images"


@dataclass(frozen=True)
class BuiltImage:
    """A built image as the tests see it."""

    config: Config
    path: Path  # the tree (Format=directory) or the image file
    key: str  # digest of the config and its inputs
    reused: bool  # True when a previous session had built it already
    build_seconds: float


class ImageCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_root()

    def entry(self, key: str) -> Path:
        return self.root / key[:24]

    def get(self, config: Config, *, rebuild: bool = False) -> BuiltImage:
        """The cached image for config, built first if it is missing (or if `rebuild`).

        The lock makes concurrent sessions and xdist workers build a given image once between them.
        """
        key = config_digest(config)
        entry = self.entry(key)
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{entry}.lock"):
            if entry.is_dir() and not rebuild:
                os.utime(entry)  # marks it as recently used
                return BuiltImage(config, entry / config.output, key, True, 0.0)
            started = time.monotonic()
            building = self.root / f".{entry.name}.building-{os.getpid()}"
            shutil.rmtree(building, ignore_errors=True)
            try:
                result = build_image(dataclasses.replace(config, output_directory=building), force=1)
                if entry.exists():
                    shutil.rmtree(entry)
                os.rename(building, entry)
            finally:
                shutil.rmtree(building, ignore_errors=True)
            return BuiltImage(config, entry / result.path.name, key, False, time.monotonic() - started)
