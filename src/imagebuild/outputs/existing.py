"""The artifacts of an image that are in the output directory: what clean removes and -f replaces."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.tools.mounts import remove_tree

if TYPE_CHECKING:
    from imagebuild.config import Config


def existing_outputs(config: Config) -> list[Path]:
    """Entries of the output directory named Output or Output.<something> (image.tar.zst, image.SHA256SUMS)."""
    directory = paths.output_directory(config)
    if not directory.is_dir():
        return []
    name = config.output
    return sorted(p for p in directory.iterdir() if p.name == name or p.name.startswith(f"{name}."))


def remove_output(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        remove_tree(path)
    else:
        path.unlink(missing_ok=True)
