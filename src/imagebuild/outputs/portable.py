"""Format=portable: see outputs/extension.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.outputs.extension import produce_extension

if TYPE_CHECKING:
    from imagebuild.context import Context


def produce(context: Context) -> list[Path]:
    return produce_extension(context)
