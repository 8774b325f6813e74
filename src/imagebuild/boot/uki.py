"""Boot entries: unified kernel images made by ukify (EFI/Linux/*.efi, boot loader spec type 2), or type 1
entries (kernel and initrds beside a loader/entries/*.conf) when UnifiedKernelImages= says so.

Order with Format=disk (outputs/repart.py): the first systemd-repart pass writes every partition but the
ESP and computes the verity root hash; this stage runs after it and puts roothash=/usrhash= on the UKIs'
command line; the second repart pass then copies the root's /efi (with the UKIs) into the ESP.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot import grub, shim
from imagebuild.boot.esp import bootable_kernels, efi_architecture, esp_tree
from imagebuild.boot.initrd import build_default_initrd, build_modules_initrd
from imagebuild.boot.kernel import Kernel
from imagebuild.boot.microcode import build_microcode_initrd
from imagebuild.boot.secure_boot import signing_files
from imagebuild.boot.toolchain import has_file, run_tool, tool
from imagebuild.config.enums import Bootloader, ConfigFeature
from imagebuild.errors import BuildError
from imagebuild.log import logger

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

SYSTEMD_MEASURE = "/usr/lib/systemd/systemd-measure"


@dataclass(frozen=True)
class UkiRequest:
    """Everything one ukify run needs."""

    kernel: Kernel
    initrds: list[Path]
    cmdline: list[str]
    os_release: Path
    output: Path
    stub: Path | None = None
    sign: bool = False
    sign_pcrs: bool = False


def verity_parameters(context: Context) -> list[str]:
    """roothash=/usrhash= from the first repart pass of Format=disk; [] otherwise."""
    try:
        from imagebuild.outputs.repart import verity_kernel_parameters
    except ImportError:
        return []
    return verity_kernel_parameters(context)


def kernel_command_line(context: Context) -> list[str]:
    cmdline = list(context.config.kernel_command_line)
    for parameter in verity_parameters(context):
        if parameter.split("=", 1)[0] not in {p.split("=", 1)[0] for p in cmdline}:
            cmdline.append(parameter)
    return cmdline


def os_release(root: Path) -> Path:
    # /etc/os-release is usually a symlink (which may be absolute, i.e. point into the image, not the host).
    for candidate in (root / "usr/lib/os-release", root / "etc/os-release"):
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    raise BuildError("the image has no os-release (/usr/lib/os-release): cannot name its boot entries")


def entry_name(context: Context, kernel: Kernel) -> str:
    config = context.config
    base = config.image_id or str(config.distribution)
    if config.image_version:
        base += f"_{config.image_version}"
    return f"{base}-{kernel.version}"


def can_measure(context: Context) -> str | None:
    """Why systemd-measure cannot sign PCR policies here, or None if it can."""
    if not has_file(context, SYSTEMD_MEASURE):
        return "systemd-measure (package systemd) is missing"
    base = context.tools_tree if context.tools_tree is not None else Path("/")
    # systemd-measure loads the TPM2 software stack at run time to compute the policy digests.
    if not any(base.glob("usr/lib/*/libtss2-esys.so.0*")):
        return "libtss2-esys (package tpm2-tools pulls it in) is missing"
    return None


def check_signed_pcrs(config: Config) -> None:
    """SignExpectedPcr=yes signs with SecureBootKey= and, as the man page says, depends on SecureBoot=.

    (SecureBoot=yes without a key is refused by the config loader already.)
    """
    if config.sign_expected_pcr == ConfigFeature.enabled and not config.secure_boot:
        raise BuildError("SignExpectedPcr=yes depends on SecureBoot=yes (the signature of the expected PCR 11 "
                         "values is made with SecureBootKey=); set SecureBoot=yes or SignExpectedPcr=auto")


def want_signed_pcrs(context: Context) -> bool:
    setting = context.config.sign_expected_pcr
    if setting == ConfigFeature.disabled:
        return False
    problem = can_measure(context)
    where = "the tools tree" if context.tools_tree is not None else "this host"
    if setting == ConfigFeature.enabled:
        check_signed_pcrs(context.config)
        if problem:
            raise BuildError(f"SignExpectedPcr=yes: {problem} in {where}; add it to ToolsTreePackages=")
        return True
    if context.config.secure_boot and problem:
        logger.info("SignExpectedPcr=auto: not signing expected PCRs: %s in %s", problem, where)
    return context.config.secure_boot and problem is None


def ukify_argv(context: Context, request: UkiRequest) -> list[str]:
    config = context.config
    argv: list[str] = [
        tool(context, "ukify", package="systemd-ukify"), "build",
        f"--linux={request.kernel.image}",
        f"--os-release=@{request.os_release}",
        f"--uname={request.kernel.version}",
        f"--efi-arch={efi_architecture(config)}",
        "--cmdline=" + " ".join(request.cmdline),
        f"--output={request.output}",
    ]
    argv += [f"--initrd={i}" for i in request.initrds]
    if request.stub is not None:
        argv.append(f"--stub={request.stub}")
    if request.sign or request.sign_pcrs:
        key, certificate = signing_files(config)
        if request.sign:
            argv += ["--signtool=sbsign", f"--secureboot-private-key={key}",
                     f"--secureboot-certificate={certificate}"]
        if request.sign_pcrs:
            argv += pcr_signing_arguments(key)
    return argv


def pcr_signing_arguments(key: Path) -> list[str]:
    """ukify's options for a .pcrsig section (and the .pcrpkey it derives from the key).

    ukify has systemd-measure sign the PCR 11 values of its default phase paths (enter-initrd through
    ready, what systemd-pcrphase measures); .pcrpkey is the public half of the key (systemd-keyutil), so
    no --pcr-public-key. Only sha256: OpenSSL may refuse SHA-1 signatures (as mkosi does).
    """
    return [f"--pcr-private-key={key}", "--pcr-banks=sha256"]


def build_uki(context: Context, request: UkiRequest) -> Path:
    request.output.parent.mkdir(parents=True, exist_ok=True)
    run_tool(context, ukify_argv(context, request), what="ukify")
    return request.output


def image_stub(context: Context) -> Path | None:
    """The image's own systemd-stub (it matches its systemd-boot); else ukify uses the tools tree's."""
    stub = context.root / f"usr/lib/systemd/boot/efi/linux{efi_architecture(context.config)}.efi.stub"
    return stub if stub.is_file() else None


def want_ukis(context: Context) -> bool:
    setting = context.config.unified_kernel_images
    if context.config.bootloader == Bootloader.uki or setting == ConfigFeature.enabled:
        tool(context, "ukify", package="systemd-ukify")  # fails with advice when missing
        return True
    if setting == ConfigFeature.disabled:
        return False
    try:
        tool(context, "ukify", package="systemd-ukify")
    except BuildError as e:
        logger.warning("UnifiedKernelImages=auto: %s; writing type 1 boot entries instead", e)
        return False
    return True


def initrds_for(context: Context, kernel: Kernel, default_initrd: list[Path]) -> list[Path]:
    # The microcode first: the kernel's early loader reads it only from the start of the initrd.
    microcode = build_microcode_initrd(context)
    initrds = [microcode] if microcode is not None else []
    initrds += [Path(p) for p in context.config.initrds] or list(default_initrd)
    if context.config.kernel_modules_initrd:
        initrds.append(build_modules_initrd(context, kernel))
    return initrds


@dataclass(frozen=True)
class Type1Entry:
    """A boot loader spec type 1 entry and the files in the ESP it names."""

    conf: Path
    linux: Path
    initrds: list[Path]


def write_type1_entry(context: Context, kernel: Kernel, initrds: list[Path], cmdline: list[str]) -> Type1Entry:
    """Kernel and initrds in the ESP under the entry token and a boot loader spec type 1 entry for them."""
    esp = esp_tree(context)
    token = context.config.image_id or str(context.config.distribution)
    directory = esp / token / kernel.version
    directory.mkdir(parents=True, exist_ok=True)
    linux = directory / "linux"
    shutil.copyfile(kernel.image, linux)
    lines = [f"title {token} {kernel.version}", f"version {kernel.version}", f"linux /{token}/{kernel.version}/linux"]
    copies = []
    for number, initrd in enumerate(initrds):
        copies.append(directory / f"initrd{number}")
        shutil.copyfile(initrd, copies[-1])
        lines.append(f"initrd /{token}/{kernel.version}/initrd{number}")
    lines.append("options " + " ".join(cmdline))
    entry = esp / "loader/entries" / f"{entry_name(context, kernel)}.conf"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text("\n".join(lines) + "\n")
    return Type1Entry(entry, linux, copies)


def build_unified_kernel_images(context: Context) -> None:
    config = context.config
    kernels = bootable_kernels(context)
    bios_grub = grub.state(context).bios
    if not kernels or (config.bootloader == Bootloader.none and not bios_grub):
        return
    if config.bootloader == Bootloader.uki:
        # A single UKI, of the newest kernel, is the boot loader itself.
        kernels = kernels[:1]
    default_initrd = [] if config.initrds else [build_default_initrd(context)]
    cmdline = kernel_command_line(context)
    if grub.state(context).efi or bios_grub:
        # grub sets no LoaderDevicePartUUID for the initrd to find the root by, and a UKI it chainloads
        # has no way to learn the partition either: name it.
        cmdline += grub.root_parameter(context, cmdline)
    ukis = config.bootloader != Bootloader.none and want_ukis(context)
    if not ukis and config.bootloader == Bootloader.uki:
        raise BuildError("Bootloader=uki needs ukify")
    sign_pcrs = want_signed_pcrs(context) if ukis else False
    for kernel in kernels:
        initrds = initrds_for(context, kernel, default_initrd)
        if ukis:
            build_kernel_uki(context, kernel, initrds, cmdline, sign_pcrs)
        if not ukis or bios_grub:
            # BIOS grub cannot start a UKI: it boots the kernel and initrds of a type 1 entry.
            entry = write_type1_entry(context, kernel, initrds, cmdline)
            grub.add_type1_entry(context, entry.conf.stem, entry.linux, entry.initrds, cmdline, with_ukis=ukis)


def install_prebuilt_uki(context: Context, kernel: Kernel, output: Path) -> Path | None:
    """ShimBootloader=signed: a UKI the distribution built and signed (usr/lib/modules/<version>/*.efi), as
    mkosi v22 does; one built here would carry no signature the distribution's keys accept."""
    directory = context.root / "usr/lib/modules" / kernel.version
    prebuilt = sorted(directory.glob("*.efi"))
    if not prebuilt:
        message = (f"ShimBootloader=signed: no signed UKI in /usr/lib/modules/{kernel.version}/*.efi (the "
                   "distribution's prebuilt one is needed); use UnifiedKernelImages=no for type 1 entries")
        if context.config.bootable == ConfigFeature.enabled:
            raise BuildError(message)
        logger.warning("%s (Bootable=auto: no UKI installed)", message)
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(prebuilt[0], output)
    logger.info("Installed the prebuilt UKI /%s as /%s", prebuilt[0].relative_to(context.root),
                output.relative_to(context.root))
    grub.add_uki_entry(context, output)
    return output


def build_kernel_uki(context: Context, kernel: Kernel, initrds: list[Path], cmdline: list[str],
                     sign_pcrs: bool) -> Path | None:
    config = context.config
    esp = esp_tree(context)
    if config.bootloader == Bootloader.uki:
        output = shim.boot_loader_path(context)
    else:
        output = esp / "EFI/Linux" / f"{entry_name(context, kernel)}.efi"
    if shim.signed(context):
        return install_prebuilt_uki(context, kernel, output)
    request = UkiRequest(
        kernel=kernel,
        initrds=initrds,
        cmdline=cmdline,
        os_release=os_release(context.root),
        output=output,
        stub=image_stub(context),
        sign=config.secure_boot,
        sign_pcrs=sign_pcrs,
    )
    build_uki(context, request)
    logger.info("Built %s (command line: %s)", output.relative_to(context.root), " ".join(cmdline))
    grub.add_uki_entry(context, output)
    return output
