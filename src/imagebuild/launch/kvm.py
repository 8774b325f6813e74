"""Whether KVM really works here: decided by a probe boot, not by /dev/kvm existing.

A nested, paravirtual /dev/kvm can exist and still crash every guest kernel (measured on the build
machines: `-cpu host` aborts on an MSR, other CPU models die with "emulation failure"). The probe boots a
real kernel under KVM without a root file system: a working KVM reaches the kernel's "VFS: Unable to mount
root fs" panic within seconds. The verdict is cached per host kernel and qemu version.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

from imagebuild.tools.run import tools_tree_wrapper

PROBE_TIMEOUT = 30.0
# What a kernel prints once it has run through its whole early boot and found no root file system.
PROBE_SUCCESS = "VFS: Unable to mount root fs"


def kvm_device_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def verdict_key(qemu_version: str) -> str:
    return f"{platform.release()} {qemu_version.strip()}"


def probe_argv(qemu: str, kernel: Path) -> list[str]:
    return [
        qemu, "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-m", "512", "-smp", "1",
        "-display", "none", "-vga", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none",
        "-no-reboot", "-kernel", os.fspath(kernel), "-append", "console=ttyS0 panic=-1 loglevel=4",
    ]


def run_probe(qemu: str, kernel: Path, tools_tree: Path | None) -> bool:
    argv = probe_argv(qemu, kernel)
    if tools_tree is not None:
        argv = [*tools_tree_wrapper(tools_tree), *argv]
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                errors="replace", timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return False
    except OSError:
        return False
    return PROBE_SUCCESS in result.stdout


def load_verdicts(cache: Path) -> dict[str, bool]:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, bool)} if isinstance(data, dict) else {}


def kvm_works(qemu: str, qemu_version: str, kernel: Path | None, tools_tree: Path | None,
              cache: Path) -> tuple[bool, str | None]:
    """Whether to use KVM (the cached verdict, else a probe boot of `kernel`), and a note for the user
    when KVM is there but not used."""
    if not kvm_device_usable():
        return False, None
    key = verdict_key(qemu_version)
    verdicts = load_verdicts(cache)
    if key not in verdicts:
        if kernel is None:
            return False, "no kernel to probe KVM with; using TCG (slower) for this boot"
        verdicts[key] = run_probe(qemu, kernel, tools_tree)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(verdicts, indent=1) + "\n")
            tmp.replace(cache)
        except OSError:
            pass
    if verdicts[key]:
        return True, None
    return False, f"KVM does not work here (a probe boot failed; verdict cached in {cache}); using TCG, which is slower"
