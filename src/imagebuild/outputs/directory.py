"""Format=directory: the root file system itself is the output."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.context import Context


def produce(context: Context) -> list[Path]:
    staged = context.staging / context.config.output
    context.root.rename(staged)
    return [staged]
