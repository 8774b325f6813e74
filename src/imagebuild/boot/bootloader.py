"""Install systemd-boot, grub (boot/grub.py) and shim (boot/shim.py) into the ESP tree, prepare Secure Boot;
trim kernel modules.

This stage runs before depmod (pipeline.CUSTOMIZE), so it is also where KernelModulesInclude=/Exclude=/
IncludeHost= remove modules from the image: depmod then rewrites the module indexes for what is left.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot import grub, modules, shim
from imagebuild.boot.esp import bootable_kernels, efi_architecture, esp_tree
from imagebuild.boot.kernel import find_kernels
from imagebuild.boot.secure_boot import sign, write_enrollment_files
from imagebuild.config.enums import Bootloader, ConfigFeature
from imagebuild.errors import BuildError
from imagebuild.log import logger

if TYPE_CHECKING:
    from imagebuild.context import Context


def image_module_filter(context: Context) -> modules.ModuleFilter:
    c = context.config
    return modules.ModuleFilter(tuple(c.kernel_modules_include), tuple(c.kernel_modules_exclude),
                                c.kernel_modules_include_host)


def trim_kernel_modules(context: Context) -> None:
    selection = image_module_filter(context)
    if selection.is_everything:
        return
    for kernel in find_kernels(context.root):
        modules_dir = kernel.modules_dir(context.root)
        deps = modules.read_dependencies(modules_dir)
        keep = modules.select_modules(deps, selection, modules_dir=modules_dir)
        removed = modules.remove_unselected(context.root, modules_dir, keep, deps)
        logger.info("Kernel %s: kept %d modules, removed %d", kernel.version, len(keep), removed)


def systemd_boot_binary(context: Context, name: str) -> Path | None:
    """The image's systemd-boot binary: the unsigned one, else the distribution-signed one.

    Debian trixie's systemd-boot depends on "systemd-boot-efi-signed | systemd-boot-efi", so without
    Recommends an image often has only systemd-boot<arch>.efi.signed (bootctl installs that one too).
    ShimBootloader=signed takes only the signed one: it is to boot with the distribution's keys.
    """
    directory = context.root / "usr/lib/systemd/boot/efi"
    candidates = [directory / f"{name}.signed"] if shim.signed(context) else [directory / name,
                                                                              directory / f"{name}.signed"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def install_systemd_boot(context: Context) -> None:
    config = context.config
    arch = efi_architecture(config)
    name = f"systemd-boot{arch}.efi"
    source = systemd_boot_binary(context, name)
    if source is None:
        wanted = f"{name}.signed" if shim.signed(context) else name
        package = "systemd-boot-efi-amd64-signed" if shim.signed(context) else "systemd-boot-efi"
        message = (f"Bootloader=systemd-boot: the image has no usr/lib/systemd/boot/efi/{wanted}; "
                   f"add {package} to Packages=")
        if config.bootable == ConfigFeature.enabled:
            raise BuildError(message)
        logger.warning("%s (Bootable=auto: no boot loader installed)", message)
        return
    esp = esp_tree(context)
    # Behind shim, systemd-boot is the second stage that shim starts; shim takes BOOT<ARCH>.EFI.
    targets = [esp / "EFI/systemd" / name, shim.boot_loader_path(context)]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        if config.secure_boot and not shim.signed(context):
            sign(context, source, target)
        else:
            shutil.copyfile(source, target)
    loader = ["timeout 0"]
    if config.secure_boot and config.secure_boot_auto_enroll:
        write_enrollment_files(context, esp / "loader/keys/auto")
        # "force": enroll whenever the firmware is in setup mode, also on real hardware, as mkosi does.
        loader.append("secure-boot-enroll force")
    (esp / "loader").mkdir(parents=True, exist_ok=True)
    (esp / "loader/loader.conf").write_text("".join(f"{line}\n" for line in loader))


def install_bootloader(context: Context) -> None:
    trim_kernel_modules(context)
    if not bootable_kernels(context):
        return
    # Bootloader=grub and BiosBootloader=grub (the latter goes with any Bootloader=).
    grub.install_grub(context)
    if context.config.bootloader == Bootloader.systemd_boot:
        install_systemd_boot(context)
    # Bootloader=uki: the UKI itself is the boot loader (EFI/BOOT/BOOT<ARCH>.EFI, or shim's second stage:
    # see uki.py); shim goes in front of whichever it is now.
    shim.install_shim(context)
