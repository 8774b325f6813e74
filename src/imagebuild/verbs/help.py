"""help: the option and verb overview."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.config import format_help

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

NEEDS_CONFIG = False


def run(args: Args, images: list[Config]) -> int:
    print(format_help())
    return 0
