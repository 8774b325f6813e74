"""documentation: the settings reference, generated from the settings table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.config import format_documentation

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

NEEDS_CONFIG = False


def run(args: Args, images: list[Config]) -> int:
    print(format_documentation(args.doc_format))
    return 0
