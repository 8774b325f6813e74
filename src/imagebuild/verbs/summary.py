"""summary: show the resolved configuration (--json for mkosi's JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.config import format_json, format_summary

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def run(args: Args, images: list[Config]) -> int:
    print(format_json(images) if args.json else format_summary(args, images))
    return 0
