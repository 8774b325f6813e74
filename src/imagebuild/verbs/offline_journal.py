"""journalctl and coredumpctl: read a built image's journal and core dumps offline, as mkosi does.

A directory image is read with --root=TREE, a disk image with --image=FILE (the tools open its partitions
themselves). The arguments after the verb go to the tool as they are.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from imagebuild.config.enums import Compression
from imagebuild.errors import ImageBuildError
from imagebuild.log import logger
from imagebuild.pipeline.pipeline import output_path
from imagebuild.tools.run import find_tool
from imagebuild.verbs import main_image

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

PACKAGES = {"journalctl": "systemd", "coredumpctl": "systemd-coredump"}


def offline_command(tool: str, config: Config, cmdline: list[str]) -> list[str]:
    """argv of `tool` on the built output of `config` (checked to exist and to hold a file system)."""
    path = output_path(config)
    image_format = str(config.format)
    if image_format not in ("directory", "disk"):
        raise ImageBuildError(f"'{tool}' reads Format=directory or Format=disk images, not Format={image_format}")
    if image_format == "disk" and config.compress_output != Compression.none:
        raise ImageBuildError(f"'{tool}' cannot read a compressed image ({path}): set CompressOutput=no")
    if not path.exists():
        raise ImageBuildError(f"{path} has not been built yet: run 'imagebuild build' first")
    where = f"--root={path}" if image_format == "directory" else f"--image={path}"
    # The host's tool, as mkosi does: a journal is readable by an older journalctl (no tools tree needed).
    return [find_tool(tool, package=PACKAGES[tool]), where, *cmdline]


def exec_offline(tool: str, args: Args, images: list[Config]) -> int:
    argv = offline_command(tool, main_image(images), list(args.cmdline))
    logger.debug("+ %s", " ".join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
