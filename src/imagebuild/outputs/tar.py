"""Format=tar: a (compressed) tar archive of the root, with ownership, xattrs and ACLs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.outputs.archive import make_tar
from imagebuild.outputs.naming import uncompressed_name

if TYPE_CHECKING:
    from imagebuild.context import Context


def produce(context: Context) -> list[Path]:
    config = context.config
    destination = context.staging / uncompressed_name(config)
    return [make_tar(context.root, destination, str(config.compress_output), config.compress_level)]
