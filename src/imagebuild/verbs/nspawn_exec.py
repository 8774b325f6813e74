"""shell and boot: exec systemd-nspawn on the built image."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from imagebuild.errors import ImageBuildError
from imagebuild.launch.nspawn import NspawnOptions, nspawn_command
from imagebuild.log import logger
from imagebuild.pipeline.pipeline import output_path
from imagebuild.verbs import build_if_needed, main_image, need_root

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def exec_nspawn(args: Args, images: list[Config], *, boot: bool) -> int:
    need_root(args.verb)
    build_if_needed(args, images)
    config = main_image(images)
    if str(config.format) != "directory":
        raise ImageBuildError(f"'{args.verb}' needs Format=directory for now (this image is Format={config.format})")
    argv = nspawn_command(config, output_path(config), NspawnOptions(boot=boot), args.cmdline)
    logger.debug("+ %s", " ".join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
