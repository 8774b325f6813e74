"""qemu command lines for a built image: used by `imagebuild qemu` and by pytest_mkosi's qemu runners.

    with qemu_machine(config, tools_tree=tools_tree_for(config), options=QemuOptions()) as vm:
        subprocess.run(vm.argv)        # or Popen it and talk to its serial console

qemu_machine prepares everything a boot needs in a scratch directory (an ephemeral copy of the disk, a
Format=directory tree served by virtiofsd from a throw-away overlay, or turned into an ext4 disk where there
is no virtiofsd, RuntimeTrees= through virtiofsd, a RuntimeScratch= disk, writable firmware variables,
QemuDrives=, a running swtpm) and stops and removes it all afterwards; the argv already runs qemu from the
tools tree when there is one.

Boot paths: disks boot through OVMF (UEFI; the Secure Boot build with empty variables when the image is
signed, so systemd-boot can enroll its keys) or SeaBIOS (QemuFirmware=bios); trees, cpio archives and
QemuFirmware=linux boot the kernel directly (QemuKernel=, <output>.vmlinuz and <output>.initrd, or the
newest kernel and initrd in the tree). KVM is used only when a probe boot shows it works (launch/kvm.py);
otherwise multi-threaded TCG.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.boot.kernel import find_kernels
from imagebuild.config import ConfigFeature, Network, QemuFirmware
from imagebuild.config.setting import Effect
from imagebuild.config.support import refusals
from imagebuild.errors import RunError
from imagebuild.launch import firmware as fw
from imagebuild.launch import io_uring, runtime_scratch, virtiofs
from imagebuild.launch.accel import accelerator_args as accelerator_args  # re-exported
from imagebuild.launch.accel import choose as choose_accelerator
from imagebuild.launch.accel import qemu_version
from imagebuild.launch.disks import grow, qcow2_overlay, qemu_drives, scratch_copy, tree_to_ext4
from imagebuild.launch.kvm import kvm_device_usable, kvm_works
from imagebuild.launch.lifetime import make_scratch
from imagebuild.launch.smbios import smbios_credential_files
from imagebuild.launch.swtpm import Swtpm, swtpm_available
from imagebuild.launch.virtiofs import Virtiofsd
from imagebuild.log import logger
from imagebuild.tools.run import find_tool, tools_tree_wrapper
from imagebuild.tools.virtiofsd import find_virtiofsd

if TYPE_CHECKING:
    from imagebuild.config import Config

# Formats qemu can boot, and what each one is to qemu.
DISK_FORMATS = frozenset({"disk", "esp", "uki"})
BOOTABLE_FORMATS = DISK_FORMATS | fw.DIRECT_BOOT_FORMATS

SCRATCH_PREFIX = "imagebuild-qemu-"

@dataclass
class QemuOptions:
    """What the caller adds to what the config says."""

    # The serial console: None puts it on stdin/stdout multiplexed with the monitor (Ctrl-a c, Ctrl-a x);
    # runners pass e.g. ["-serial", "unix:PATH,server=on,wait=off"].
    console_args: list[str] | None = None
    # Appended last: the qemu verb's command line, a runner's devices.
    extra_args: Sequence[str] = ()
    # None: Ephemeral= decides; runners force a private copy with True.
    ephemeral: bool | None = None
    # A kernel given on the command line (-kernel of the qemu verb), before QemuKernel=.
    kernel: Path | None = None
    # Disks boot from a qcow2 overlay over the image, which qemu then only reads (runners: the cached
    # image must never change, and an overlay costs nothing up front, unlike a copy).
    overlay: bool = False
    # The directory for this boot's files (the caller owns and removes it); None: a scratch directory. An
    # overlay, firmware variables and TPM state found there from an earlier boot are used again.
    scratch: Path | None = None
    # A user-mode NIC: None lets RuntimeNetwork= decide (user by default, as in mkosi); runners pass False
    # unless the config asks for a network, so that a test machine has none by default.
    network: bool | None = None
    # A Format=directory tree already made into an ext4 file system (disks.tree_to_ext4, e.g. once per
    # cached image): booted through a qcow2 overlay in the scratch directory instead of sharing the tree
    # over virtiofs, which under TCG costs about 10 s of every boot.
    root_disk: Path | None = None
    # The firmware variables to start a machine from instead of QemuFirmwareVariables='s file: e.g. the
    # plugin's copy of the variables after systemd-boot enrolled the image's keys (pytest_mkosi.enrolled_vars),
    # so that a Secure Boot boot skips enrolling them and the firmware's reset that follows.
    firmware_variables: Path | None = None


@dataclass
class QemuMachine:
    argv: list[str]
    accelerator: str
    firmware: QemuFirmware
    # The disk qemu boots (a scratch copy when ephemeral), None for a cpio archive.
    disk: Path | None
    scratch: Path
    swtpm: Swtpm | None = None
    # One per virtiofs share (the root of a directory image, RuntimeTrees=), running.
    virtiofsd: list[Virtiofsd] = field(default_factory=list)
    temporary: list[Path] = field(default_factory=list)
    # One line: which accelerator and why (also logged).
    accelerator_note: str = ""


def image_path(config: Config) -> Path:
    """The artifact qemu boots: the tree for Format=directory, else the output file."""
    from imagebuild.outputs.naming import artifact_name, is_compressed

    directory = paths.output_directory(config)
    if str(config.format) == "directory":
        return directory / config.output
    if is_compressed(config):
        raise RunError(f"qemu cannot boot a compressed image ({artifact_name(config)}); set CompressOutput=no")
    return directory / artifact_name(config)


def check_bootable(config: Config) -> None:
    fmt = str(config.format)
    if fmt not in BOOTABLE_FORMATS:
        raise RunError(f"qemu cannot boot Format={fmt}; use Format=disk, uki, esp, cpio or directory")
    # Run-time settings the settings table marks not_yet (QemuGui=, QemuVsock=, ...) and that matter here.
    found = refusals(config, {Effect.RUNTIME})
    if found:
        raise RunError("\n".join(str(r) for r in found))
    if "RuntimeNetwork" in config.non_default and config.runtime_network == Network.interface:
        raise RunError("not supported yet with the qemu verb: RuntimeNetwork=interface (no tap device here)")


# ---- kernels for direct boot ------------------------------------------------------------------------


def _tree_initrd(tree: Path, version: str) -> Path | None:
    for candidate in (tree / "usr/lib/modules" / version / "initrd", tree / "boot" / f"initrd.img-{version}"):
        if candidate.is_file():
            return candidate
    return None


def direct_boot_files(config: Config, kernel_override: Path | None) -> tuple[Path, Path | None]:
    """The kernel and initrd to boot directly: -kernel/QemuKernel=, the build's split artifacts, the tree."""
    directory = paths.output_directory(config)
    split_kernel, split_initrd = directory / f"{config.output}.vmlinuz", directory / f"{config.output}.initrd"
    initrd = split_initrd if split_initrd.is_file() else None
    kernel = kernel_override or config.qemu_kernel
    if kernel is not None:
        if not Path(kernel).is_file():
            raise RunError(f"QemuKernel=: the kernel {kernel} does not exist")
        return Path(kernel), initrd
    if split_kernel.is_file():
        return split_kernel, initrd
    tree = image_path(config) if str(config.format) == "directory" else None
    if tree is not None:
        kernels = find_kernels(tree)
        if kernels:
            newest = kernels[0]
            return newest.image, initrd or _tree_initrd(tree, newest.version)
    raise RunError(
        f"QemuFirmware=linux: no kernel to boot {config.output} with; install one in the image "
        "(e.g. Packages=linux-image-amd64), or set QemuKernel="
    )


# ---- the command line -------------------------------------------------------------------------------


def smbios_credentials(config: Config, directory: Path, *, fstab: Sequence[str] = ()) -> list[str]:
    """Credentials= for the guest's systemd, each from a 0600 file in `directory` (launch/smbios.py);
    `fstab` lines are added to the fstab.extra credential."""
    credentials = dict(config.credentials)
    if fstab:
        credentials["fstab.extra"] = "".join(f"{line}\n" for line in [credentials.get("fstab.extra", ""), *fstab]
                                             if line)
    return smbios_credential_files(credentials, directory)


def direct_boot_cmdline(config: Config, *, root: str | None, rootfstype: str | None = None) -> str:
    words = list(config.kernel_command_line)
    if not any(w.startswith("console=") for w in words):
        words.append("console=ttyS0")
    if root is not None and not any(w.startswith("root=") for w in words):
        words += [f"root={root}", *([f"rootfstype={rootfstype}"] if rootfstype else []), "rw"]
    words += config.kernel_command_line_extra
    return " ".join(words)


def console_args(options: QemuOptions) -> list[str]:
    if options.console_args is not None:
        return list(options.console_args)
    # signal=off: Ctrl-C goes to the guest; Ctrl-a x quits qemu, Ctrl-a c switches to the monitor.
    return ["-chardev", "stdio,id=console,mux=on,signal=off", "-serial", "chardev:console", "-mon", "console"]


def use_kvm(config: Config, qemu: str, kernel: Path | None, tools_tree: Path | None,
            reasons: list[str] | None = None) -> bool:
    """Whether to boot with KVM; why goes into `reasons`."""
    found: list[str] = reasons if reasons is not None else []
    if config.qemu_kvm == ConfigFeature.disabled:
        found.append("QemuKvm=no")
        return False
    if config.qemu_kvm == ConfigFeature.enabled:
        if not kvm_device_usable():
            raise RunError("QemuKvm=yes: /dev/kvm is not usable here; set QemuKvm=auto or no")
        found.append("QemuKvm=yes")
        return True
    if not kvm_device_usable():
        found.append("this host has no usable /dev/kvm")
        return False
    cache = paths.user_cache_home() / "imagebuild" / "kvm-verdict.json"
    works, note = kvm_works(qemu, qemu_version(qemu, tools_tree) or "unknown", kernel, tools_tree, cache)
    if works:
        found.append("a probe boot under KVM worked")
    elif note is not None and "no kernel" in note:
        found.append("no kernel to probe /dev/kvm with")
    else:
        found.append(f"/dev/kvm is there but a probe boot under KVM failed (verdict cached in {cache})")
    return works


def want_swtpm(config: Config, firmware: QemuFirmware, tools_tree: Path | None) -> bool:
    """QemuSwtpm=auto: a TPM where it means something (UEFI measures the boot) and swtpm is there."""
    if config.qemu_swtpm == ConfigFeature.enabled:
        return True
    uefi = firmware in (QemuFirmware.uefi, QemuFirmware.uefi_secure_boot)
    return config.qemu_swtpm == ConfigFeature.auto and uefi and swtpm_available(tools_tree)


def _probe_kernel(config: Config) -> Path | None:
    with contextlib.suppress(RunError):
        return direct_boot_files(config, None)[0]
    return None


@contextlib.contextmanager
def qemu_machine(config: Config, *, tools_tree: Path | None, options: QemuOptions | None = None
                 ) -> Iterator[QemuMachine]:
    """Everything one boot needs, and its argv; all of it is stopped and removed on exit."""
    options = options or QemuOptions()
    check_bootable(config)
    image = image_path(config)
    if not image.exists():
        raise RunError(f"{image} does not exist; build the image first (imagebuild build)")
    qemu = find_tool("qemu-system-x86_64", package="qemu-system-x86", tools_tree=tools_tree)
    firmware = fw.resolve_firmware(config)
    fmt = str(config.format)
    if fmt == "uki" and firmware in (QemuFirmware.linux, QemuFirmware.bios):
        raise RunError(f"QemuFirmware={firmware} cannot boot a UKI; use QemuFirmware=uefi")
    # virtiofs: a directory image's root (where there is a virtiofsd) and RuntimeTrees=, checked before any work.
    virtiofsd = find_virtiofsd(tools_tree)
    root_disk = options.root_disk if fmt == "directory" else None
    shares = virtiofs.plan_shares(config, image, virtiofsd, share_root=root_disk is None)
    own_scratch = options.scratch is None
    scratch = make_scratch(paths.workspace_parent(config), SCRATCH_PREFIX) if options.scratch is None \
        else options.scratch
    machine: QemuMachine | None = None
    daemons: list[Virtiofsd] = []
    try:
        argv = [*(tools_tree_wrapper(tools_tree) if tools_tree else []), qemu]
        argv += ["-machine", "q35" + (",smm=on" if firmware == QemuFirmware.uefi_secure_boot else "")
                 + (",memory-backend=mem" if shares else ""),
                 "-m", config.qemu_mem, "-no-user-config", "-nodefaults"]
        if shares:
            argv += virtiofs.memory_args(config.qemu_mem)
        ephemeral = config.ephemeral if options.ephemeral is None else options.ephemeral

        # The disk, and how it boots.
        disk: Path | None = None
        kernel: Path | None = None
        initrd: Path | None = None
        root: str | None = None
        rootfstype: str | None = None
        if root_disk is not None:
            disk = scratch / "root.qcow2"
            if not disk.exists():  # a machine started again after a crash keeps its disk
                qcow2_overlay(root_disk, disk, size=None, tools_tree=tools_tree)
            root = "/dev/vda"
        elif virtiofs.root_share(shares) is not None:
            root, rootfstype = virtiofs.ROOT_TAG, "virtiofs"
        elif fmt == "directory":
            disk = scratch / "root.ext4"
            tree_to_ext4(image, disk, minimum_size=config.runtime_size, tools_tree=tools_tree)
            root = "/dev/vda"
        elif fmt == "cpio":
            initrd = image
        elif fmt == "uki":
            # OVMF starts the UKI handed over as -kernel; there is no disk.
            kernel = image
        elif options.overlay:
            disk = scratch / "overlay.qcow2"
            # One the caller's scratch directory has from an earlier boot is booted again (a runner's
            # machine started again after a crash keeps its disk).
            if not disk.exists():
                qcow2_overlay(image, disk, size=config.runtime_size, tools_tree=tools_tree)
        else:
            disk = image
            if ephemeral:
                disk = scratch / image.name
                scratch_copy(image, disk)
            grow(disk, config.runtime_size)
        if firmware == QemuFirmware.linux or fmt == "cpio":
            kernel, split_initrd = direct_boot_files(config, options.kernel)
            if initrd is None:
                initrd = split_initrd
        elif options.kernel is not None:
            kernel = options.kernel

        reasons: list[str] = []
        kvm = use_kvm(config, qemu, kernel or _probe_kernel(config), tools_tree, reasons)
        accelerator = choose_accelerator(config, kvm=kvm, reason="; ".join(reasons) or "QemuKvm=auto",
                                         version=qemu_version(qemu, tools_tree))
        logger.info("Note: %s", accelerator.note())
        argv += accelerator.args()
        if firmware in (QemuFirmware.uefi, QemuFirmware.uefi_secure_boot):
            ovmf = fw.find_ovmf(config, firmware, tools_tree)
            if options.firmware_variables is not None:
                ovmf = replace(ovmf, variables=options.firmware_variables)
            argv += fw.firmware_args(ovmf, fw.writable_variables(ovmf, scratch))
        if kernel is not None:
            argv += ["-kernel", os.fspath(kernel)]
            if initrd is not None:
                argv += ["-initrd", os.fspath(initrd)]
            if firmware == QemuFirmware.linux or fmt == "cpio":
                argv += ["-append", direct_boot_cmdline(config, root=root, rootfstype=rootfstype)]
        if disk is not None:
            disk_format = "qcow2" if disk.suffix == ".qcow2" else "raw"
            if config.qemu_cdrom:
                argv += ["-drive", f"if=none,id=image,file={disk},format={disk_format},media=cdrom,readonly=on",
                         "-device", "virtio-scsi-pci,id=scsi", "-device", "scsi-cd,drive=image,bootindex=1"]
            else:
                # find_tool names the tree's binary as the command sees it: /usr/bin/NAME.
                binary = tools_tree / qemu.lstrip("/") if tools_tree else Path(qemu)
                aio = ",aio=io_uring" if io_uring.usable(binary) else ""
                argv += ["-drive", f"if=none,id=image,file={disk},format={disk_format},cache=unsafe,discard=unmap{aio}",
                         "-device", "virtio-blk-pci,drive=image,bootindex=1"]
        drive_args, drive_files = qemu_drives(config, scratch)
        argv += drive_args
        fstab = virtiofs.fstab_lines(shares)
        if runtime_scratch.wanted(config):
            argv += runtime_scratch.qemu_args(runtime_scratch.make_scratch_disk(scratch, tools_tree))
            fstab.append(runtime_scratch.FSTAB_LINE)

        if firmware != QemuFirmware.linux and config.kernel_command_line_extra:
            # systemd-stub (v254+) appends this to the UKI's command line.
            extra = " ".join(config.kernel_command_line_extra)
            argv += ["-smbios", f"type=11,value=io.systemd.stub.kernel-cmdline-extra={extra}"]
        argv += smbios_credentials(config, scratch / "credentials", fstab=fstab)
        argv += ["-device", "virtio-rng-pci"]
        network = config.runtime_network == Network.user if options.network is None else options.network
        argv += ["-nic", "user,model=virtio-net-pci"] if network else ["-nic", "none"]
        argv += ["-display", "none", "-vga", "none"]
        argv += console_args(options)

        machine = QemuMachine(argv, accelerator.name, firmware, disk, scratch, temporary=drive_files,
                              accelerator_note=accelerator.note(), virtiofsd=daemons)
        if virtiofsd is not None:
            argv += virtiofs.start_daemons(shares, daemons, binary=virtiofsd, tools_tree=tools_tree,
                                           directory=scratch)
        if want_swtpm(config, firmware, tools_tree):
            machine.swtpm = Swtpm(scratch / "swtpm", tools_tree)
            machine.swtpm.start()
            argv += machine.swtpm.qemu_args()
        argv += config.qemu_args
        argv += list(options.extra_args)
        yield machine
    finally:
        for daemon in daemons:
            daemon.stop()
        if machine is not None:
            if machine.swtpm is not None:
                machine.swtpm.stop()
            for path in machine.temporary:
                path.unlink(missing_ok=True)
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
