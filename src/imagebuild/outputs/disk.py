"""Format=disk: a GPT disk image written by systemd-repart in two passes.

1. `write_partitions_before_esp` (a pipeline stage right before "build unified kernel images") writes
   every partition except the ESP and XBOOTLDR, which repart only reserves (--defer-partitions). Its JSON
   (context.artifacts/repart.json) has the verity root hash, which the boot chain puts on the UKIs'
   command line (repart.verity_kernel_parameters).
2. `produce` (the output stage) runs repart again on the same image: it fills the reserved partitions from
   the root's /boot and /efi (now with the UKIs) and, with SplitArtifacts=, writes the split files;
   then grub-bios-setup writes BIOS grub into it (BiosBootloader=grub, boot/grub.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot import grub
from imagebuild.outputs import naming
from imagebuild.outputs.compress import compress
from imagebuild.outputs.partitions import disk_definition_directories
from imagebuild.outputs.repart import (
    check_definitions,
    definition_files,
    load_partitions,
    run_repart,
    save_partitions_json,
)
from imagebuild.outputs.timestamps import clamp_mtimes

if TYPE_CHECKING:
    from imagebuild.context import Context

# Filled in the second pass, after the UKIs exist.
DEFERRED_PARTITION_TYPES = ("esp", "xbootldr")


def image_path(context: Context) -> Path:
    return context.staging / naming.uncompressed_name(context.config)


def _definitions(context: Context) -> list[Path]:
    marker = context.workspace / "repart-definitions.list"
    if marker.exists():
        return [Path(line) for line in marker.read_text().splitlines() if line]
    directories = disk_definition_directories(context)
    check_definitions(context.config, directories)
    marker.write_text("".join(f"{d}\n" for d in directories))
    return directories


def _prepare_copy_sources(context: Context, directories: list[Path]) -> None:
    # The default ESP definition copies /boot and /efi; repart fails on a missing source.
    if directories == [context.workspace / "repart-definitions"] and any(
        f.name == "00-esp.conf" for f in definition_files(directories)
    ):
        for name in ("boot", "efi"):
            (context.root / name).mkdir(exist_ok=True)


def write_partitions_before_esp(context: Context) -> None:
    """First repart pass: everything but the ESP/XBOOTLDR, so that the verity root hash is known."""
    if str(context.config.format) != "disk":
        return
    directories = _definitions(context)
    _prepare_copy_sources(context, directories)
    if context.config.source_date_epoch is not None:
        # The pipeline clamps mtimes before the output stage; this pass comes earlier and must too.
        clamp_mtimes(context.root, context.config.source_date_epoch)
    partitions = run_repart(
        context, image_path(context), directories, create=True, defer=DEFERRED_PARTITION_TYPES,
        what="systemd-repart (disk image, first pass)",
    )
    save_partitions_json(context, partitions)


def produce(context: Context) -> list[Path]:
    if load_partitions(context) is None:
        write_partitions_before_esp(context)
    image = image_path(context)
    partitions = run_repart(
        context, image, _definitions(context), create=False, split=context.config.split_artifacts,
        what="systemd-repart (disk image, ESP and split artifacts)",
    )
    # BiosBootloader=grub: the core image goes into the BIOS boot partition of the finished disk.
    grub.setup_bios(context, image, [p.type for p in partitions])
    split = [p.split_path for p in partitions if p.split_path is not None and p.split_path.exists()]
    return compress_artifacts(context, [image, *split])


def compress_artifacts(context: Context, files: list[Path]) -> list[Path]:
    """CompressOutput= applies to the image and its split partitions alike (as in mkosi)."""
    config = context.config
    if not naming.is_compressed(config):
        return files
    return [compress(f, str(config.compress_output), config.compress_level) for f in files]
