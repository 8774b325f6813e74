"""help (and -h, --help): the option and verb overview, through a pager on a terminal as in mkosi v22."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.config import format_help
from imagebuild.tools.pager import page

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

NEEDS_CONFIG = False


def run(args: Args, images: list[Config]) -> int:
    page(format_help(), args.pager)
    return 0
