"""Which firmware boots an image in qemu, and where OVMF's code and variables files are."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config import QemuFirmware
from imagebuild.errors import RunError

if TYPE_CHECKING:
    from imagebuild.config import Config

# Debian's ovmf package (trixie): 4 MiB builds; the secboot build needs SMM.
OVMF_DIRECTORY = "usr/share/OVMF"
OVMF_CODE = "OVMF_CODE_4M.fd"
OVMF_CODE_SECURE_BOOT = "OVMF_CODE_4M.secboot.fd"
# Empty variables: Secure Boot in setup mode, so systemd-boot can enroll the image's own keys.
OVMF_VARS = "OVMF_VARS_4M.fd"
# Microsoft's keys enrolled (QemuFirmwareVariables=microsoft).
OVMF_VARS_MICROSOFT = "OVMF_VARS_4M.ms.fd"

# Formats booted by handing qemu a kernel; the others are disks a firmware boots.
DIRECT_BOOT_FORMATS = frozenset({"directory", "cpio"})


def resolve_firmware(config: Config) -> QemuFirmware:
    """QemuFirmware=auto: direct kernel boot for trees and cpio archives, UEFI for disks (with Secure
    Boot when the image is signed for it)."""
    firmware = config.qemu_firmware
    if str(config.format) in DIRECT_BOOT_FORMATS:
        # There is no disk with a boot loader to hand a firmware; mkosi boots these directly too.
        return QemuFirmware.linux
    if firmware != QemuFirmware.auto:
        return firmware
    return QemuFirmware.uefi_secure_boot if config.secure_boot else QemuFirmware.uefi


@dataclass(frozen=True)
class Ovmf:
    code: Path
    variables: Path
    secure_boot: bool


def find_ovmf(config: Config, firmware: QemuFirmware, tools_tree: Path | None) -> Ovmf:
    """OVMF from the tools tree (else the host) and the variables file QemuFirmwareVariables= asks for."""
    base = (tools_tree or Path("/")) / OVMF_DIRECTORY
    secure_boot = firmware == QemuFirmware.uefi_secure_boot
    code = base / (OVMF_CODE_SECURE_BOOT if secure_boot else OVMF_CODE)
    if not code.exists():
        where = f"the tools tree {tools_tree}" if tools_tree else "this host"
        raise RunError(f"QemuFirmware={firmware}: {code.name} is not in {where}; install the 'ovmf' package "
                       "or set ToolsTree=default")
    setting = config.qemu_firmware_variables
    if setting is None:
        variables = base / OVMF_VARS
    elif setting == "microsoft":
        variables = base / OVMF_VARS_MICROSOFT
    elif setting == "custom":
        raise RunError("not supported yet: QemuFirmwareVariables=custom (enroll the keys with "
                       "SecureBootAutoEnroll= or pass a variables file)")
    else:
        variables = Path(setting)
    if not variables.is_file():
        raise RunError(f"QemuFirmwareVariables=: the firmware variables file {variables} does not exist")
    return Ovmf(code, variables, secure_boot)


def writable_variables(ovmf: Ovmf, directory: Path) -> Path:
    """A copy of the variables file for one machine: the firmware writes to it (boot entries, enrolled keys);
    one already in `directory` (an earlier boot of the same machine) is kept."""
    copy = directory / "ovmf-vars.fd"
    if not copy.exists():
        shutil.copyfile(ovmf.variables, copy)
    return copy


def firmware_args(ovmf: Ovmf, variables: Path) -> list[str]:
    args = []
    if ovmf.secure_boot:
        # The Secure Boot build keeps its variable store in SMM, or anyone could rewrite the keys.
        args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    args += [
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={ovmf.code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
    ]
    return args
