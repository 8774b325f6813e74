"""Format=cpio: a (compressed) newc cpio archive of the root, as the kernel unpacks initrds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.outputs.archive import make_cpio
from imagebuild.outputs.naming import uncompressed_name

if TYPE_CHECKING:
    from imagebuild.context import Context


def produce(context: Context) -> list[Path]:
    config = context.config
    destination = context.staging / uncompressed_name(config)
    return [make_cpio(context.root, destination, str(config.compress_output), config.compress_level)]
