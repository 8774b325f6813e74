"""Format=sysext, confext and portable: an erofs root partition with dm-verity, written by systemd-repart.

The partition definitions are outputs/partitions.py's extension definitions (RepartDirectories= is for
Format=disk only, as in mkosi v22). With VerityKey= and VerityCertificate= the image also carries a verity
signature partition.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.outputs import naming
from imagebuild.outputs.disk import compress_artifacts
from imagebuild.outputs.partitions import extension_definitions, write_definitions
from imagebuild.outputs.repart import run_repart, save_partitions_json
from imagebuild.outputs.timestamps import clamp_mtimes

if TYPE_CHECKING:
    from imagebuild.context import Context


def produce_extension(context: Context) -> list[Path]:
    config = context.config
    directory = write_definitions(context.workspace / "repart-definitions", extension_definitions(config))
    if config.source_date_epoch is not None:
        clamp_mtimes(context.root, config.source_date_epoch)
    image = context.staging / naming.uncompressed_name(config)
    partitions = run_repart(
        context, image, [directory], create=True, sector_size=None, split=config.split_artifacts,
        what=f"systemd-repart (Format={config.format})",
    )
    save_partitions_json(context, partitions)
    split = [p.split_path for p in partitions if p.split_path is not None and p.split_path.exists()]
    return compress_artifacts(context, [image, *split])
