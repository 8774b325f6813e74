"""One module per verb of the imagebuild command.

imagebuild.verbs.<verb> has `run(args, images) -> int` (the exit status); verbs that need no
configuration (help, documentation, genkey) set NEEDS_CONFIG = False and take `run(args, [])`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

from imagebuild.errors import ImageBuildError

if TYPE_CHECKING:
    from imagebuild.config import Args, Config, Verb

VerbHandler = Callable[["Args", "list[Config]"], int]


def module_for(verb: Verb) -> ModuleType:
    try:
        return importlib.import_module(f"imagebuild.verbs.{verb.value}")
    except ModuleNotFoundError as e:
        if e.name != f"imagebuild.verbs.{verb.value}":
            raise
        raise ImageBuildError(f"not supported yet: the '{verb}' verb") from None


def need_root(verb: Verb) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError(f"'{verb}' needs root: run it with sudo or as root")


def main_image(images: list[Config]) -> Config:
    """The image the run verbs act on: the last one (sub-images come before the image that uses them)."""
    return images[-1]


def build_if_needed(args: Args, images: list[Config]) -> None:
    """Run verbs build the image first when it is missing (or always, with -f)."""
    from imagebuild.pipeline import build_image
    from imagebuild.pipeline.pipeline import output_path

    for config in images:
        if args.force or not output_path(config).exists():
            build_image(config, force=args.force, keep_workspace_on_failure=args.debug_workspace)
