"""Copy skeleton and extra trees (directories or tar archives) into the image."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.tools.run import run
from imagebuild.tools.subvolumes import copy_tree as copy_tree_or_snapshot

if TYPE_CHECKING:
    from imagebuild.config import TreeSpec
    from imagebuild.context import Context

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.zst", ".tar.bz2")


def copy_tree(source: Path, destination: Path) -> None:
    """Copy the contents of a directory or a tar archive into destination, merging with what is there."""
    destination.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        # The image is root's: the files of the user's checkout are not.
        run(
            ["cp", "-a", "--no-preserve=ownership", "--reflink=auto", f"{source}/.", os.fspath(destination)],
            what=f"copying {source}",
        )
    elif source.name.endswith(TAR_SUFFIXES):
        # A tar archive records ownership on purpose; keep it.
        run(
            ["tar", "--extract", "--same-owner", "--same-permissions", "--xattrs", "--acls",
             "--file", os.fspath(source), "--directory", os.fspath(destination)],
            what=f"unpacking {source}",
        )
    else:
        raise BuildError(f"{source}: a tree must be a directory or a tar archive ({', '.join(TAR_SUFFIXES)})")


def install_trees(context: Context, trees: Sequence[TreeSpec], setting: str) -> None:
    for tree in trees:
        source = Path(tree.source)
        if not source.exists():
            raise BuildError(f"{setting}={source}: no such file or directory")
        target = Path(tree.target) if tree.target is not None else Path("/")
        copy_tree(source, context.root / target.relative_to("/"))


def install_base_trees(context: Context) -> None:
    """BaseTrees=: earlier images (directories or tar archives) the image starts from, ownership kept."""
    for tree in context.config.base_trees:
        source = Path(tree)
        if not source.exists():
            raise BuildError(f"BaseTrees={source}: no such file or directory")
        if source.is_dir():
            # Unlike skeleton and extra trees, a base tree is an OS tree: its owners are the image's. A base
            # tree that is a subvolume is snapshotted (UseSubvolumes=) when it is the first.
            copy_tree_or_snapshot(source, context.root, context.config.use_subvolumes)
        elif source.name.endswith(TAR_SUFFIXES):
            copy_tree(source, context.root)
        else:
            raise BuildError(
                f"BaseTrees={source}: not supported yet: disk images as base trees; "
                f"use a directory or a tar archive ({', '.join(TAR_SUFFIXES)})"
            )


def install_skeleton_trees(context: Context) -> None:
    install_trees(context, context.config.skeleton_trees, "SkeletonTrees")


def install_extra_trees(context: Context) -> None:
    install_trees(context, context.config.extra_trees, "ExtraTrees")
