"""vmspawn: boot the image with systemd-vmspawn (systemd 256 or newer) from the tools tree, else the host.

The command line follows mkosi v22's: --cpus/--ram/--kvm/--vsock/--tpm/--secure-boot from the Qemu*= settings
and SecureBoot=, --network-user-mode or --network-tap for RuntimeNetwork=, --set-credential= for
Credentials=, --bind for RuntimeTrees= (under /root/src), --linux for QemuKernel=, --directory or --image for
the output, then the verb's arguments and KernelCommandLineExtra=. What vmspawn cannot boot (other formats,
BIOS, CD-ROMs, firmware variables; Ephemeral= and RuntimeSize=, not done yet) is refused before anything is
built, and so is a missing or too old systemd-vmspawn: Debian trixie's systemd 257 ships none, so
ToolsTree=default has none either.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.config.enums import ConfigFeature, Network, OutputFormat, QemuFirmware
from imagebuild.errors import BuildError, RunError
from imagebuild.launch.qemu import image_path
from imagebuild.pipeline.subbuilds import tools_tree_for
from imagebuild.tools.run import find_tool, tools_tree_wrapper
from imagebuild.verbs import build_if_needed, main_image, need_root

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

MINIMUM_VERSION = 256


def check_bootable(config: Config) -> None:
    if config.format not in (OutputFormat.disk, OutputFormat.directory):
        raise RunError(f"systemd-vmspawn cannot boot Format={config.format}; use Format=disk or directory "
                       "(or the qemu verb)")
    if config.qemu_firmware == QemuFirmware.bios:
        raise RunError("systemd-vmspawn cannot boot with BIOS firmware (QemuFirmware=bios); use the qemu verb")
    if config.qemu_cdrom:
        raise RunError("systemd-vmspawn cannot boot CD-ROM images (QemuCdrom=yes); use the qemu verb")
    if config.qemu_firmware_variables not in (None, "microsoft"):
        raise RunError("the vmspawn verb does not take QemuFirmwareVariables= (only microsoft); use the qemu verb")
    # v22 copies the image for Ephemeral= and grows it for RuntimeSize=; this verb does neither yet.
    for name, value in (("Ephemeral", config.ephemeral), ("RuntimeSize", config.runtime_size)):
        if value:
            raise RunError(f"not supported yet with the vmspawn verb: {name}=; use the qemu verb")
    if config.qemu_kernel is not None and not Path(config.qemu_kernel).exists():
        raise RunError(f"QemuKernel={config.qemu_kernel}: no such file")


def tristate(feature: ConfigFeature) -> str:
    return {ConfigFeature.enabled: "yes", ConfigFeature.disabled: "no"}.get(feature, "auto")


def find_vmspawn(tools_tree: Path | None) -> str:
    """systemd-vmspawn where the verb runs it, checked to be systemd 256 or newer."""
    where = "the tools tree" if tools_tree is not None else "this host"
    try:
        vmspawn = find_tool("systemd-vmspawn", tools_tree=tools_tree)
    except BuildError:
        raise RunError(
            f"the vmspawn verb needs systemd-vmspawn (systemd {MINIMUM_VERSION} or newer), and {where} has none "
            "(Debian trixie's systemd 257 does not ship it, so neither does ToolsTree=default); boot the image "
            "with the qemu verb instead, or give ToolsTree= a tree with systemd-vmspawn"
        ) from None
    argv = [*(tools_tree_wrapper(tools_tree) if tools_tree else []), vmspawn, "--version"]
    output = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    match = re.search(r"systemd (\d+)", output)
    if match is None or int(match.group(1)) < MINIMUM_VERSION:
        found = f"systemd {match.group(1)}" if match else "an unknown version"
        raise RunError(f"systemd-vmspawn in {where} is {found}; the vmspawn verb needs systemd {MINIMUM_VERSION} "
                       "or newer")
    return vmspawn


def vmspawn_argv(config: Config, vmspawn: str, extra: list[str]) -> list[str]:
    argv = [vmspawn, "--cpus", str(config.qemu_smp), "--ram", str(config.qemu_mem),
            "--kvm", tristate(config.qemu_kvm), "--vsock", tristate(config.qemu_vsock),
            "--tpm", tristate(config.qemu_swtpm), "--secure-boot", "yes" if config.secure_boot else "no"]
    if config.runtime_network == Network.user:
        argv.append("--network-user-mode")
    elif config.runtime_network == Network.interface:
        argv.append("--network-tap")
    if config.qemu_gui:
        argv.append("--console=gui")
    argv += [f"--set-credential={key}:{value}" for key, value in config.credentials.items()]
    for tree in config.runtime_trees:
        target = Path("/root/src") / (tree.target or Path(tree.source).name)
        argv += ["--bind", f"{tree.source}:{target}"]
    if config.qemu_kernel is not None:
        argv += ["--linux", str(config.qemu_kernel)]
    image = image_path(config)
    if config.format == OutputFormat.directory:
        argv += ["--directory", str(image)]
        owner = image.stat().st_uid if image.exists() else 0
        if owner != 0:
            argv.append(f"--private-users={owner}")
    else:
        argv += ["--image", str(image)]
    return [*argv, *extra, *config.kernel_command_line_extra]


def run(args: Args, images: list[Config]) -> int:
    need_root(args.verb)
    config = main_image(images)
    check_bootable(config)
    tools_tree = tools_tree_for(config)
    vmspawn = find_vmspawn(tools_tree)
    build_if_needed(args, images)
    argv = [*(tools_tree_wrapper(tools_tree) if tools_tree else []),
            *vmspawn_argv(config, vmspawn, list(args.cmdline))]
    sys.stdout.flush()
    return subprocess.run(argv, env={**os.environ, **config.environment}, check=False).returncode
