"""OVMF variables with the image's Secure Boot keys already enrolled, made once beside a cache entry
(`<entry>.ovmf-vars.fd`), which the qemu runner starts its machines from instead of OVMF's empty ones.

A signed image boots from empty variables (setup mode) so that systemd-boot enrolls the keys of its ESP
(loader/keys/auto, SecureBootAutoEnroll=); it then resets the machine, and OVMF starts all over again. Under
TCG that first firmware run (OVMF's start in SMM, systemd-boot, the enrollment) cost every test boot of
examples/disk tens of seconds. So it is done once: a boot with -no-reboot, where qemu exits at that reset
and the variables file holds just what systemd-boot enrolled. A machine started from a copy boots as the
second half of today's boot did (the same keys, Secure Boot on, the same measurements: the TPM is reset
with the machine), so tests see no difference.

An image whose boot enrolls nothing (the kernel starts first) gets a `<entry>.ovmf-vars.none` marker and
boots from the empty variables as before. The files go with the entry (root_disks.forget_root_disk).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from imagebuild.config import Bootloader, QemuFirmware
from imagebuild.launch import firmware as fw
from imagebuild.launch import qemu as launch
from pytest_mkosi.root_disks import VARS_SUFFIXES, is_cache_entry

if TYPE_CHECKING:
    from imagebuild.config import Config

log = logging.getLogger("pytest_mkosi")

# systemd-boot's words once the keys are in (and its reset comes next).
ENROLLED = b"successfully enrolled"
# The kernel started without an enrollment first.
BOOTED = (b"EFI stub:", b"Linux version")
ENROLL_TIMEOUT = 600.0


def enrolls_keys(config: Config) -> bool:
    """Whether a boot from empty variables makes systemd-boot enroll the image's keys."""
    return (fw.resolve_firmware(config) == QemuFirmware.uefi_secure_boot and config.secure_boot
            and config.secure_boot_auto_enroll and config.qemu_firmware_variables is None
            and config.bootloader == Bootloader.systemd_boot)


def enrolled_variables(config: Config, image: Path, *, tools_tree: Path | None) -> Path | None:
    """The enrolled variables of the cached disk image `image` (made first if missing); None where the
    image enrolls nothing, is not in the cache, or the enrollment boot failed (the machine then enrolls
    the keys itself, as without this file)."""
    entry = image.parent
    if not enrolls_keys(config) or not is_cache_entry(entry):
        return None
    target, none = (Path(f"{entry}{suffix}") for suffix in VARS_SUFFIXES[:2])
    with FileLock(f"{entry}{VARS_SUFFIXES[2]}"):
        if target.is_file():
            return target
        if none.exists():
            return None
        partial = entry.parent / f".{target.name}.making-{os.getpid()}"
        try:
            enrolled = enroll(dataclasses.replace(config, output_directory=entry), partial, tools_tree=tools_tree)
            if enrolled:
                os.rename(partial, target)
                return target
            if enrolled is False:
                none.touch()
        finally:
            partial.unlink(missing_ok=True)
    return None


def enroll(config: Config, variables: Path, *, tools_tree: Path | None) -> bool | None:
    """Boot the image until systemd-boot has enrolled its keys and reset the machine; write the variables
    to `variables`. True: enrolled; False: the kernel started without an enrollment; None: it failed."""
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        # Beside the cache entry (the image's overlay and the variables; swtpm's state).
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".enroll-",
                                                                       dir=variables.parent)))
        console = scratch / "console.log"
        options = launch.QemuOptions(console_args=["-serial", f"file:{console}"], extra_args=["-no-reboot"],
                                     ephemeral=True, overlay=True, scratch=scratch, network=False)
        vm = stack.enter_context(launch.qemu_machine(config, tools_tree=tools_tree, options=options))
        process = subprocess.Popen(vm.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        outcome: bool | None = None
        try:
            while time.monotonic() - started < ENROLL_TIMEOUT:
                text = console.read_bytes() if console.exists() else b""
                if ENROLLED in text:
                    outcome = process.wait(ENROLL_TIMEOUT) == 0  # -no-reboot: qemu exits at the reset
                    break
                if any(word in text for word in BOOTED) or process.poll() is not None:
                    outcome = False if process.poll() is None else None
                    break
                time.sleep(0.2)
        except subprocess.TimeoutExpired:
            outcome = None
        finally:
            if process.poll() is None:
                process.kill()
            _, stderr = process.communicate()
        if outcome:
            shutil.copyfile(scratch / "ovmf-vars.fd", variables)
        log.info("OVMF variables of %s: %s after %.1f s%s", config.output,
                 {True: "keys enrolled", False: "nothing to enroll", None: "the enrollment boot failed"}[outcome],
                 time.monotonic() - started, f" ({stderr.decode(errors='replace').strip()[-500:]})"
                 if outcome is None else "")
        return outcome
