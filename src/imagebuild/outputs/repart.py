"""systemd-repart: partition definitions and the one way this builder runs repart.

Every partitioned format (disk, esp, sysext, confext, portable) is written by `run_repart`, which turns
the [Output]/[Validation] settings into repart options: --offline (RepartOffline=), --seed (Seed=),
--sector-size (SectorSize=), --split (SplitArtifacts=), --key-file (Passphrase=), --private-key,
--private-key-source and --certificate (VerityKey=, VerityKeySource=, VerityCertificate=). repart's
--json=pretty output is kept in context.artifacts (REPART_JSON) for the verity root hash.

Format=disk runs repart twice (outputs/disk.py): the first pass writes every partition except the ESP and
XBOOTLDR (--defer-partitions), which fixes the verity root hash; the boot chain then builds its UKIs with
`verity_kernel_parameters(context)` on their command line; the second pass fills the ESP with them.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.tools.tools_tree import require_tool, run_tool

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

# repart learnt --offline in 254; 257 is what the trixie tools tree has.
REPART_MINIMUM_VERSION = 254

# The first pass's JSON (the one that knows the root hash), kept for the boot chain and for users.
REPART_JSON = "repart.json"

# The default for SectorSize=: OVMF cannot read an ESP formatted with 4096-byte sectors.
DEFAULT_SECTOR_SIZE = 512

# A fixed namespace for deriving the ext4 directory hash seed from Seed= (reproducible images).
_EXT4_HASH_SEED_NAMESPACE = uuid.UUID("5d1b4c0e-8a3f-4e55-9a0d-6c1e0e5f7a21")

# The UUID of GRUB's BIOS boot partition, which GRUB needs on GPT to embed itself into.
BIOS_BOOT_PARTITION_TYPE = "21686148-6449-6e6f-744e-656564454649"

# Default file system of the root partition, by distribution (what the distributions' installers use).
_DEFAULT_FILESYSTEMS = {
    "fedora": "btrfs", "opensuse": "btrfs",
    "centos": "xfs", "rhel": "xfs", "rhel-ubi": "xfs", "alma": "xfs", "rocky": "xfs",
}

# EFI's names for architectures (BOOT<NAME>.EFI).
EFI_ARCHITECTURES = {
    "x86-64": "x64", "x86": "ia32", "arm64": "aa64", "arm": "arm", "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}


def default_filesystem(config: Config) -> str:
    return _DEFAULT_FILESYSTEMS.get(str(config.distribution), "ext4")


def efi_architecture(config: Config) -> str | None:
    return EFI_ARCHITECTURES.get(str(config.architecture))


@dataclass(frozen=True)
class Partition:
    """One entry of repart's JSON output."""

    type: str
    label: str
    uuid: str
    partno: int
    offset: int
    size: int
    roothash: str | None
    split_path: Path | None

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Partition:
        roothash = entry.get("roothash")
        split = entry.get("split_path")
        return cls(
            type=str(entry["type"]),
            label=str(entry.get("label", "")),
            uuid=str(entry.get("uuid", "")),
            partno=int(entry["partno"]),
            offset=int(entry["offset"]),
            size=int(entry["raw_size"]),
            # The second pass reports "TBD" for partitions it did not write: not a hash.
            roothash=roothash if isinstance(roothash, str) and re.fullmatch(r"[0-9a-f]+", roothash) else None,
            split_path=Path(split) if split else None,
        )


def _section_values(text: str, key: str) -> list[str]:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=\s*(.*?)\s*$", re.MULTILINE)
    return pattern.findall(text)


def definition_files(directories: Sequence[Path]) -> list[Path]:
    """The *.conf files repart reads from these directories (a later directory's file of the same name wins)."""
    chosen: dict[str, Path] = {}
    for directory in directories:
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.name.endswith(".conf"):
                    chosen[entry.name] = entry
    return [chosen[name] for name in sorted(chosen)]


def check_definitions(config: Config, directories: Sequence[Path]) -> None:
    """Refuse, with advice, what repart would refuse later with a terse message."""
    files = definition_files(directories)
    if not files:
        shown = ", ".join(str(d) for d in directories)
        raise BuildError(f"RepartDirectories=: no partition definitions (*.conf) in {shown}")
    for file in files:
        text = file.read_text()
        verity = [v.lower() for v in _section_values(text, "Verity")]
        if "signature" in verity and (config.verity_key is None or config.verity_certificate is None):
            raise BuildError(
                f"{file}: Verity=signature needs VerityKey= and VerityCertificate=: run `imagebuild genkey` "
                "to create mkosi.key and mkosi.crt (used automatically), or set both settings"
            )
        encrypt = [v.lower() for v in _section_values(text, "Encrypt")]
        if any(v in ("key-file", "key-file+tpm2") for v in encrypt) and config.passphrase is None:
            raise BuildError(
                f"{file}: Encrypt={encrypt[0]} needs a passphrase: put it in mkosi.passphrase (mode 0600, "
                "no trailing newline) or set Passphrase="
            )


def preflight(config: Config) -> None:
    """Check the user's partition definitions before anything is built (the defaults need no check)."""
    if str(config.format) == "disk" and config.repart_directories:
        check_definitions(config, [Path(d) for d in config.repart_directories])


def ext4_hash_seed(seed: str) -> str:
    """A directory hash seed derived from Seed=, so that ext4 file systems are bit-identical on rebuilds."""
    return str(uuid.uuid5(_EXT4_HASH_SEED_NAMESPACE, seed))


def repart_environment(config: Config, workspace: Path) -> dict[str, str]:
    env = {
        # repart's temporary file systems go to the workspace (checked by build/workspace_check.py),
        # not to /var/tmp.
        "TMPDIR": os.fspath(workspace),
        "SYSTEMD_LOG_COLOR": "0",
        "SYSTEMD_REPART_MKFS_OPTIONS_EROFS": "--quiet",
    }
    if config.source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(config.source_date_epoch)
    if config.seed is not None:
        env["SYSTEMD_REPART_MKFS_OPTIONS_EXT4"] = f"-E hash_seed={ext4_hash_seed(config.seed)}"
    return env


def repart_options(config: Config, *, sector_size: int | None) -> list[str]:
    """The options every repart run of this config shares."""
    options = [
        "--dry-run=no",
        "--no-pager",
        "--json=pretty",
        f"--offline={'yes' if config.repart_offline else 'no'}",
        f"--seed={config.seed or 'random'}",
        f"--architecture={config.architecture}",
    ]
    size = config.sector_size or sector_size
    if size:
        options.append(f"--sector-size={size}")
    if config.passphrase is not None:
        options.append(f"--key-file={config.passphrase}")
    if config.verity_key is not None:
        source = config.verity_key_source
        if str(source.type) != "file":
            options.append(f"--private-key-source={source}")
        options.append(f"--private-key={config.verity_key}")
    if config.verity_certificate is not None:
        options.append(f"--certificate={config.verity_certificate}")
    return options


def run_repart(
    context: Context,
    image: Path,
    definitions: Sequence[Path],
    *,
    create: bool,
    sector_size: int | None = DEFAULT_SECTOR_SIZE,
    root: Path | None = None,
    defer: Sequence[str] = (),
    split: bool = False,
    what: str = "systemd-repart",
) -> list[Partition]:
    """Run systemd-repart on image with these definition directories; return the partitions it reports."""
    config = context.config
    repart = require_tool(context, "systemd-repart", minimum_version=REPART_MINIMUM_VERSION,
                          package="systemd-repart")
    argv: list[str] = [repart, *repart_options(config, sector_size=sector_size)]
    argv.append(f"--root={root or context.root}")
    argv += [f"--definitions={d}" for d in definitions]
    argv += ["--empty=create", "--size=auto"] if create else ["--empty=allow"]
    if defer:
        argv.append(f"--defer-partitions={','.join(defer)}")
    if split:
        argv.append("--split=yes")
    argv.append(os.fspath(image))
    output = context.workspace / f"repart-{image.name}.json"
    # run() joins stderr to stdout; the JSON alone goes to a file through a shell redirection.
    run_tool(context, ["sh", "-c", 'out="$1"; shift; exec "$@" >"$out"', "sh", os.fspath(output), *argv],
             what=what, env=repart_environment(config, context.workspace))
    try:
        entries = json.loads(output.read_text())
    except (OSError, ValueError) as e:
        raise BuildError(f"{what}: cannot read its JSON output {output}: {e}") from None
    finally:
        output.unlink(missing_ok=True)
    partitions = [Partition.from_json(entry) for entry in entries]
    for partition in partitions:
        logger.debug("partition %d: %s (%s) at %d, %d bytes", partition.partno, partition.type,
                     partition.label, partition.offset, partition.size)
    return partitions


def save_partitions_json(context: Context, partitions: Sequence[Partition]) -> Path:
    path = context.artifacts / REPART_JSON
    entries = [
        {"type": p.type, "label": p.label, "uuid": p.uuid, "partno": p.partno, "offset": p.offset,
         "raw_size": p.size, "roothash": p.roothash,
         "split_path": os.fspath(p.split_path) if p.split_path else None}
        for p in partitions
    ]
    path.write_text(json.dumps(entries, indent=2) + "\n")
    return path


def load_partitions(context: Context) -> list[Partition] | None:
    """The partitions of the first repart pass, or None when no disk image is being built."""
    path = context.artifacts / REPART_JSON
    if not path.exists():
        return None
    return [Partition.from_json(entry) for entry in json.loads(path.read_text())]


def roothash(partitions: Sequence[Partition]) -> tuple[str, str] | None:
    """("roothash" or "usrhash", hash) of the verity-protected root or /usr partition, if there is one."""
    for partition in partitions:
        if partition.roothash and partition.type.endswith("-verity"):
            kind = "usrhash" if partition.type.startswith("usr") else "roothash"
            return kind, partition.roothash
    for partition in partitions:
        if partition.roothash:
            return ("usrhash" if partition.type.startswith("usr") else "roothash"), partition.roothash
    return None


def verity_kernel_parameters(context: Context) -> list[str]:
    """Kernel command line parameters for the image's verity root hash: ["roothash=…"], ["usrhash=…"] or [].

    For the boot chain: valid from the stage "write partitions (first systemd-repart pass)" on, which
    runs right before "build unified kernel images".
    """
    partitions = load_partitions(context)
    found = roothash(partitions) if partitions else None
    return [f"{found[0]}={found[1]}"] if found else []
