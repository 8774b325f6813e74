"""Bootloader=grub and BiosBootloader=grub: grub core images on the ESP and in the BIOS boot partition.

What mkosi v22 does, and so this module:
- grub-mkimage (from the tools tree, else the host) builds a core image from the *image's* grub modules
  (usr/lib/grub/<target>, Debian's grub-efi-amd64-bin / grub-pc-bin) with the modules it needs built in
  and an early config that searches for /<prefix>/grub.cfg ("grub", "grub2" on Fedora-like distributions).
- EFI: the core image is EFI/BOOT/BOOTX64.EFI (grubx64.efi behind shim), signed with SecureBootKey= when
  SecureBoot= is on; behind shim under Secure Boot it carries the .sbat section of the distribution's signed
  grub (shim refuses a second stage without SBAT data). ShimBootloader=signed installs that signed grub
  instead. EFI/<distribution>/grub.cfg says `configfile /grub/grub.cfg`, for the signed grub binaries of
  distributions that read their config from there.
- BIOS: the i386-pc core image (with biosdisk) is written into the BIOS boot partition by grub-bios-setup
  once the disk image exists (setup_bios, called by outputs/disk.py); kernels and initrds stay on the ESP.
- grub.cfg on the ESP (/grub/grub.cfg): `set timeout=0` unless the image brings its own file, then one
  menu entry per kernel: on EFI a `chainloader` of the UKI, on BIOS (or without UKIs) `linux`/`initrd` of
  the type 1 entry's files with root=PARTUUID= of the first repart pass.

Nothing is mounted: every file goes to the root's /efi, which the ESP partition copies (CopyFiles=).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot import shim
from imagebuild.boot.esp import bootable_kernels, esp_tree
from imagebuild.boot.secure_boot import sign
from imagebuild.boot.toolchain import run_tool
from imagebuild.config.enums import BiosBootloader, Bootloader, ConfigFeature, OutputFormat
from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.tools import tools_tree as tools

if TYPE_CHECKING:
    from imagebuild.context import Context

# GRUB's BIOS boot partition on GPT, into which grub-bios-setup embeds the core image.
BIOS_BOOT_PARTITION_TYPE = "21686148-6449-6e6f-744e-656564454649"

# grub's platform names for EFI architectures (the directories under usr/lib/grub).
EFI_TARGETS = {"x86-64": "x86_64-efi", "x86": "i386-efi", "arm64": "arm64-efi", "arm": "arm-efi",
               "riscv64": "riscv64-efi", "loongarch64": "loongarch64-efi"}
BIOS_TARGET = "i386-pc"

# Built into every core image, so that the ESP needs no module directory (what v22 builds in).
CORE_MODULES = ("cat", "cmp", "div", "echo", "fat", "hello", "help", "keylayouts", "linux", "loadenv", "ls",
                "normal", "part_gpt", "read", "reboot", "search_fs_file", "search", "test", "tr", "true")

# Distributions whose grub calls itself grub2 (config in /grub2, tools grub2-*).
GRUB2_DISTRIBUTIONS = frozenset({"fedora", "centos", "rhel", "rhel-ubi", "alma", "rocky", "opensuse"})

# Where the image's grub modules are, by distribution family.
MODULE_DIRECTORIES = ("usr/lib/grub", "usr/share/grub2")

# What the install stage decided, for the later stages (entries, grub-bios-setup).
STATE_FILE = "grub.json"


@dataclass(frozen=True)
class GrubState:
    efi: bool = False
    bios: bool = False


def grub_prefix(context: Context) -> str:
    return "grub2" if str(context.config.distribution) in GRUB2_DISTRIBUTIONS else "grub"


def grub_config(context: Context) -> Path:
    return esp_tree(context) / grub_prefix(context) / "grub.cfg"


def module_directory(context: Context, target: str) -> Path | None:
    for base in MODULE_DIRECTORIES:
        directory = context.root / base / target
        if directory.is_dir() and any(directory.iterdir()):
            return directory
    return None


# Newer Debian packages keep some grub programs out of $PATH (trixie: grub-bios-setup in grub-pc-bin).
LIBEXEC_DIRECTORIES = ("usr/lib/grub/i386-pc",)


def grub_tool(context: Context, name: str, *, package: str) -> str:
    """grub-<name> or grub2-<name> where the boot tools run (the tools tree, else the host)."""
    for candidate in (f"grub-{name}", f"grub2-{name}"):
        try:
            return tools.tool(context, candidate)
        except BuildError:
            continue
    base = context.tools_tree or Path("/")
    for directory in LIBEXEC_DIRECTORIES:
        if (base / directory / f"grub-{name}").is_file():
            return f"/{directory}/grub-{name}"
    where = "the tools tree (add it to ToolsTreePackages=)" if context.tools_tree else "this host (install it)"
    raise BuildError(f"grub-{name} is needed for a grub boot loader but is not in {where}: package '{package}'")


def _modules_or_warn(context: Context, target: str, setting: str, package: str) -> Path | None:
    directory = module_directory(context, target)
    if directory is not None:
        return directory
    message = (f"{setting}=grub: the image has no grub modules for {target} (usr/lib/grub/{target}); "
               f"add {package} to Packages=")
    if context.config.bootable == ConfigFeature.enabled:
        raise BuildError(message)
    logger.warning("%s (Bootable=auto: no grub installed for %s)", message, target)
    return None


def efi_binary_path(context: Context) -> Path:
    """Where EFI grub goes: the firmware's default loader, or shim's second stage (grub<arch>.EFI)."""
    return shim.boot_loader_path(context)


def wants_grub_efi(context: Context) -> bool:
    return context.config.bootloader == Bootloader.grub and bool(bootable_kernels(context))


def wants_grub_bios(context: Context) -> bool:
    config = context.config
    return (config.bios_bootloader == BiosBootloader.grub and config.format == OutputFormat.disk
            and not config.overlay and bool(bootable_kernels(context)))


def early_config(context: Context) -> Path:
    """The config built into the core image: find the ESP by its grub.cfg and read it from there."""
    prefix = grub_prefix(context)
    path = context.workspace / "grub-early.cfg"
    path.write_text(f"search --no-floppy --set=root --file /{prefix}/grub.cfg\nset prefix=($root)/{prefix}\n")
    return path


def grub_mkimage(context: Context, target: str, output: Path, modules: tuple[str, ...],
                 sbat: Path | None = None) -> None:
    directory = module_directory(context, target)
    assert directory is not None
    mkimage = grub_tool(context, "mkimage", package="grub-common")
    argv: list[str | Path] = [
        mkimage, "--directory", directory, "--config", early_config(context),
        "--prefix", f"/{grub_prefix(context)}", "--output", output, "--format", target,
    ]
    if target.endswith("-efi") and not shim.in_front(context):
        # Without shim there is no shim_lock protocol to verify the kernels with; firmware checks them.
        argv.append("--disable-shim-lock")
    if sbat is not None:
        argv += ["--sbat", sbat]
    argv += [*CORE_MODULES, *modules]
    output.parent.mkdir(parents=True, exist_ok=True)
    run_tool(context, argv, what=f"grub-mkimage ({target})")


def bios_directory(context: Context) -> Path:
    """boot.img and core.img for grub-bios-setup, outside the image (v22 wrote core.img into the image)."""
    return context.workspace / "grub-bios"


def install_efi_grub(context: Context, target: str) -> None:
    output = efi_binary_path(context)
    grub_mkimage(context, target, output, ("chain",), sbat=shim.grub_sbat(context))
    if context.config.secure_boot:
        sign(context, output, output)
    write_redirect(context)
    logger.info("Installed grub for EFI as /%s", output.relative_to(context.root))


def install_signed_grub(context: Context) -> bool:
    """ShimBootloader=signed: the distribution's signed grub as shim's second stage, as it is."""
    source = shim.find(context, shim.SIGNED_GRUB)
    if source is None:
        shim.missing(context, "signed grub", shim.SIGNED_GRUB, "grub-efi-amd64-signed (Debian)")
        return False
    output = efi_binary_path(context)
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, output)
    write_redirect(context)
    logger.info("Installed the signed grub /%s as /%s", source.relative_to(context.root),
                output.relative_to(context.root))
    return True


def write_redirect(context: Context) -> None:
    # Signed grub binaries of distributions read EFI/<distribution>/grub.cfg.
    redirect = esp_tree(context) / "EFI" / str(context.config.distribution) / "grub.cfg"
    redirect.parent.mkdir(parents=True, exist_ok=True)
    redirect.write_text(f"configfile /{grub_prefix(context)}/grub.cfg\n")


def install_bios_grub(context: Context, modules: Path) -> None:
    directory = bios_directory(context)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(modules / "boot.img", directory / "boot.img")
    grub_mkimage(context, BIOS_TARGET, directory / "core.img", ("biosdisk",))
    grub_tool(context, "bios-setup", package="grub-pc-bin")  # needed later: fail now, before the disk


def install_grub(context: Context) -> None:
    """The boot loader stage: grub core images, grub.cfg's head, fonts; records what was installed."""
    efi = wants_grub_efi(context)
    bios = wants_grub_bios(context)
    if efi:
        target = EFI_TARGETS.get(str(context.config.architecture))
        if target is None:
            raise BuildError(f"Bootloader=grub: no EFI grub for Architecture={context.config.architecture}")
        if shim.signed(context):
            efi = install_signed_grub(context)
        elif _modules_or_warn(context, target, "Bootloader", "grub-efi-amd64-bin") is None:
            efi = False
        else:
            install_efi_grub(context, target)
    if bios:
        modules = _modules_or_warn(context, BIOS_TARGET, "BiosBootloader", "grub-pc-bin")
        if modules is None:
            bios = False
        else:
            install_bios_grub(context, modules)
    if efi or bios:
        config = grub_config(context)
        config.parent.mkdir(parents=True, exist_ok=True)
        if not config.exists():
            # grub stays in its menu without a timeout; a grub.cfg the image brings is kept as it is.
            config.write_text("set timeout=0\n")
        install_fonts(context)
    (context.workspace / STATE_FILE).write_text(json.dumps(asdict(GrubState(efi=efi, bios=bios))))


def install_fonts(context: Context) -> None:
    fonts = esp_tree(context) / grub_prefix(context) / "fonts"
    for base in ("grub", "grub2"):
        font = context.root / "usr/share" / base / "unicode.pf2"
        if font.is_file():
            fonts.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(font, fonts / font.name)


def state(context: Context) -> GrubState:
    path = context.workspace / STATE_FILE
    if not path.exists():
        return GrubState()
    return GrubState(**json.loads(path.read_text()))


def _esp_path(context: Context, path: Path) -> str:
    return "/" + os.fspath(path.relative_to(esp_tree(context)))


def add_uki_entry(context: Context, uki: Path) -> None:
    """A menu entry that chainloads a UKI (EFI only: BIOS grub cannot start a PE binary)."""
    if not state(context).efi:
        return
    with grub_config(context).open("a") as f:
        f.write('if [ "${grub_platform}" = efi ]; then\n'
                f'menuentry "{uki.stem}" {{\n'
                f"    chainloader {_esp_path(context, uki)}\n"
                "}\nfi\n")


ROOT_PARAMETERS = ("root", "roothash", "usrhash", "mount.usr")


def root_parameter(context: Context, cmdline: list[str]) -> list[str]:
    """root=PARTUUID= of the first pass's root (or mount.usr= of /usr) when the command line has none.

    Without UEFI there is no LoaderDevicePartUUID for systemd-gpt-auto-generator to find the root with.
    """
    if any(word.split("=", 1)[0] in ROOT_PARAMETERS for word in cmdline):
        return []
    from imagebuild.outputs.repart import load_partitions

    partitions = load_partitions(context) or []
    for prefix, parameter in (("root", "root"), ("usr", "mount.usr")):
        for partition in partitions:
            if partition.type.startswith(prefix) and "verity" not in partition.type and partition.uuid:
                return [f"{parameter}=PARTUUID={partition.uuid}"]
    return []


def add_type1_entry(context: Context, name: str, linux: Path, initrds: list[Path], cmdline: list[str],
                    *, with_ukis: bool) -> None:
    """A linux/initrd menu entry: on BIOS, and on EFI too when there are no UKIs to chainload."""
    grub = state(context)
    conditions = []
    if grub.efi and not with_ukis:
        conditions.append('[ "${grub_platform}" = efi ]')
    if grub.bios:
        conditions.append('[ "${grub_platform}" = pc ]')
    if not conditions:
        return
    words = [_esp_path(context, linux), *root_parameter(context, cmdline), *cmdline]
    with grub_config(context).open("a") as f:
        f.write(f"if {' || '.join(conditions)}; then\n"
                f'menuentry "{name}" {{\n'
                f"    linux {' '.join(words)}\n"
                f"    initrd {' '.join(_esp_path(context, i) for i in initrds)}\n"
                "}\nfi\n")


def has_bios_boot_partition(types: list[str]) -> bool:
    return any(t.lower() == BIOS_BOOT_PARTITION_TYPE for t in types)


def setup_bios(context: Context, image: Path, partition_types: list[str]) -> None:
    """grub-bios-setup: boot.img into the MBR, core.img into the BIOS boot partition of the disk image."""
    if not state(context).bios:
        return
    if not has_bios_boot_partition(partition_types):
        raise BuildError(
            "BiosBootloader=grub: the disk image has no BIOS boot partition; add a partition definition with "
            f"Type={BIOS_BOOT_PARTITION_TYPE} (1M) to RepartDirectories=, or use the default definitions"
        )
    setup = grub_tool(context, "bios-setup", package="grub-pc-bin")
    # grub-bios-setup asks which device holds --directory (from /proc/self/mountinfo) and refuses a
    # plain file. A mountinfo of our own, bound over the real one in a private mount namespace, says
    # that / is the image file: as that is the disk being set up, grub embeds itself into the BIOS boot
    # partition and never opens the "device".
    mountinfo = context.workspace / "grub-mountinfo"
    mountinfo.write_text(f"1 0 1:1 / / - fat {image}\n")
    script = 'mount --bind "$1" /proc/$$/mountinfo && shift && exec "$@"'
    run_tool(context, ["unshare", "--mount", "--propagation=private", "sh", "-c", script, "sh", mountinfo,
                       setup, "--directory", bios_directory(context), image], what="grub-bios-setup")
    logger.info("Installed grub for BIOS into %s", image.name)
