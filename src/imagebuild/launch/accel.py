"""KVM or TCG, how many vCPUs, and the one-line note that says which accelerator a boot uses and why.

KVM is used only when a probe boot works (launch/kvm.py). Under TCG a recent qemu runs one host thread per
vCPU (`thread=multi`), so the guest gets as many vCPUs as the host has cores unless QemuSmp= says
otherwise; bookworm's qemu 7.2 crashed guests with multi-threaded TCG (4 of 6 boots, measured), so with a
qemu older than MTTCG_MINIMUM it runs single-threaded with QemuSmp= vCPUs.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.tools.run import tools_tree_wrapper

if TYPE_CHECKING:
    from imagebuild.config import Config

MTTCG_MINIMUM = (8, 0)
# TCG's CPU: every feature qemu can emulate (guests built for x86-64-v3 need them), but 4-level paging: `max`
# turns on LA57, and a TCG TLB miss then walks five levels in software. Measured on the 2-core host
# (trixie guest, direct kernel boot): kernel start -> root mounted 7.1-7.2 s with la57=off, 11.0 s with it.
TCG_CPU = "max,la57=off"


@functools.cache
def qemu_version(qemu: str, tools_tree: Path | None) -> str:
    """qemu's first --version line ("" when it cannot be run)."""
    argv = [*(tools_tree_wrapper(tools_tree) if tools_tree else []), qemu, "--version"]
    try:
        output = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = output.splitlines()
    return lines[0] if lines else ""


def version_numbers(version: str) -> tuple[int, int] | None:
    match = re.search(r"version (\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def multi_threaded_tcg(version: str) -> bool:
    numbers = version_numbers(version)
    # Unknown: the tools tree's qemu, which is recent.
    return numbers is None or numbers >= MTTCG_MINIMUM


@dataclass(frozen=True)
class Accelerator:
    kvm: bool
    smp: str
    multi_threaded: bool
    # Why this accelerator: "a probe boot worked", "/dev/kvm is missing", ...
    reason: str

    @property
    def name(self) -> str:
        return "kvm" if self.kvm else "tcg"

    def args(self) -> list[str]:
        return accelerator_args(self.kvm, self.smp, multi_threaded=self.multi_threaded)

    def note(self) -> str:
        if self.kvm:
            return f"accelerator: KVM with {self.smp} vCPUs, because {self.reason}"
        threads = "multi-threaded" if self.multi_threaded else "single-threaded (this qemu is too old for MTTCG)"
        return f"accelerator: TCG ({threads}, slower than KVM) with {self.smp} vCPUs, because {self.reason}"


def accelerator_args(use_kvm: bool, smp: str, *, multi_threaded: bool = True) -> list[str]:
    if use_kvm:
        return ["-accel", "kvm", "-cpu", "host", "-smp", smp]
    return ["-accel", f"tcg,thread={'multi' if multi_threaded else 'single'}", "-cpu", TCG_CPU, "-smp", smp]


def choose_smp(config: Config, *, kvm: bool, multi_threaded: bool) -> str:
    """QemuSmp= when set (or under KVM / single-threaded TCG); else one vCPU per host core."""
    if kvm or not multi_threaded or "QemuSmp" in config.non_default:
        return config.qemu_smp
    return str(os.cpu_count() or 1)


def choose(config: Config, *, kvm: bool, reason: str, version: str) -> Accelerator:
    multi = multi_threaded_tcg(version)
    return Accelerator(kvm, choose_smp(config, kvm=kvm, multi_threaded=multi), multi, reason)
