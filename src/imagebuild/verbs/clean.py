"""clean: remove the outputs (-ff also the package cache)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.build.pipeline import output_path

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def run(args: Args, images: list[Config]) -> int:
    for config in images:
        path = output_path(config)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        if args.force >= 2:
            shutil.rmtree(paths.package_cache_directory(config), ignore_errors=True)
    return 0
