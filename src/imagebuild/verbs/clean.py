"""clean: remove the outputs; -f also the incremental cache and the build directory's content;
-ff also the package cache (mkosi v22 gives a third -f no further meaning)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.log import logger
from imagebuild.outputs.existing import existing_outputs, remove_output
from imagebuild.pipeline import incremental

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def _empty_directory(directory: Path) -> None:
    # The directory itself stays: mkosi.builddir/ being there is what turns BuildDirectory= on.
    for entry in directory.iterdir():
        remove_output(entry)


def clean_image(config: Config, force: int) -> list[Path]:
    """Remove what `force` asks for; return what was removed."""
    removed = existing_outputs(config)
    if force >= 1:
        removed += [p for p in incremental.cache_files(config) if p.exists() or p.is_symlink()]
    if force >= 2:
        cache = paths.package_cache_directory(config)
        if cache.exists():
            removed.append(cache)
    for path in removed:
        remove_output(path)
    if force >= 1 and config.build_directory is not None and Path(config.build_directory).is_dir():
        _empty_directory(Path(config.build_directory))
        removed.append(Path(config.build_directory) / "*")
    return removed


def run(args: Args, images: list[Config]) -> int:
    for config in images:
        for path in clean_image(config, args.force):
            logger.info("Removed %s", path)
    return 0
