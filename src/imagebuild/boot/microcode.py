"""The early microcode initrd: the CPU microcode the image ships, first among the initrds (as mkosi v22).

The kernel's early loader reads kernel/x86/microcode/{AuthenticAMD,GenuineIntel}.bin from an uncompressed
cpio at the very start of the initrd. For x86 images whose /usr/lib/firmware has amd-ucode/ or intel-ucode/
(Debian's amd64-microcode and intel-microcode) this initrd holds all of it, one file per vendor; with
MicrocodeHost=yes only the file for the CPU of the build host (from /proc/cpuinfo), so the initrd stays
small for images meant for the machine that builds them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import Architecture
from imagebuild.log import logger
from imagebuild.outputs.archive import make_cpio

if TYPE_CHECKING:
    from imagebuild.context import Context

AMD = "AuthenticAMD"
INTEL = "GenuineIntel"
FIRMWARE = {AMD: "usr/lib/firmware/amd-ucode", INTEL: "usr/lib/firmware/intel-ucode"}
# Where the kernel's early loader looks inside the first initrd.
EARLY_DIRECTORY = "kernel/x86/microcode"


@dataclass(frozen=True)
class Cpu:
    vendor: str
    family: int
    model: int
    stepping: int


def parse_cpuinfo(text: str) -> Cpu | None:
    """The first processor of /proc/cpuinfo that names its vendor, family, model and stepping."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            if key.strip() and value.strip():
                fields[key.strip()] = value.strip()
        try:
            return Cpu(fields["vendor_id"], int(fields["cpu family"]), int(fields["model"]),
                       int(fields["stepping"]))
        except (KeyError, ValueError):
            continue
    return None


def host_cpu() -> Cpu | None:
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return None


def microcode_file(root: Path, cpu: Cpu) -> Path | None:
    """The image's microcode for cpu, named as the distributions' packages name it; None if it has none."""
    if cpu.vendor == AMD:
        # One file per family from family 0x15 on; the older families share one.
        name = f"microcode_amd_fam{cpu.family:x}h.bin" if cpu.family > 21 else "microcode_amd.bin"
        candidates = [root / FIRMWARE[AMD] / name]
    elif cpu.vendor == INTEL:
        stem = f"{cpu.family:02x}-{cpu.model:02x}-{cpu.stepping:02x}"
        candidates = [root / FIRMWARE[INTEL] / stem, root / FIRMWARE[INTEL] / f"{stem}.initramfs"]
    else:
        return None
    return next((c for c in candidates if c.is_file()), None)


def _concatenate(files: list[Path], target: Path) -> None:
    with target.open("wb") as out:
        for file in files:
            with file.open("rb") as data:
                shutil.copyfileobj(data, out)


def build_microcode_initrd(context: Context, cpu: Cpu | None = None) -> Path | None:
    """The microcode initrd of this image (made once per build), None when there is nothing to put in it.

    cpu: the host's CPU for MicrocodeHost=yes (read from /proc/cpuinfo when not given).
    """
    config = context.config
    if config.architecture not in (Architecture.x86, Architecture.x86_64):
        return None
    target = context.artifacts / "microcode.cpio"
    if target.exists():
        return target
    root = context.root
    if not any((root / directory).is_dir() for directory in FIRMWARE.values()):
        logger.info("No /usr/lib/firmware/{amd-ucode,intel-ucode} in the image: no microcode initrd")
        return None
    staging = context.workspace / "microcode-root"
    if staging.exists():
        shutil.rmtree(staging)
    early = staging / EARLY_DIRECTORY
    early.mkdir(parents=True)
    if config.microcode_host:
        cpu = cpu or host_cpu()
        found = microcode_file(root, cpu) if cpu is not None else None
        if cpu is None or found is None:
            logger.warning("MicrocodeHost=yes: no microcode in the image for this host's CPU (%s): no microcode "
                           "initrd", cpu or "not identified")
            shutil.rmtree(staging)
            return None
        _concatenate([found], early / f"{cpu.vendor}.bin")
        logger.info("Microcode initrd with the host CPU's microcode only (/%s)", found.relative_to(root))
    else:
        for vendor, directory in FIRMWARE.items():
            if (root / directory).is_dir():
                files = sorted(p for p in (root / directory).iterdir() if p.is_file())
                _concatenate(files, early / f"{vendor}.bin")
    make_cpio(staging, target)
    shutil.rmtree(staging)
    return target
