"""The closed value sets of the configuration language, spelled exactly as mkosi v22 spells them."""

from __future__ import annotations

import enum


class Verb(enum.StrEnum):
    summary = "summary"
    build = "build"
    shell = "shell"
    boot = "boot"
    qemu = "qemu"
    vmspawn = "vmspawn"
    ssh = "ssh"
    journalctl = "journalctl"
    coredumpctl = "coredumpctl"
    clean = "clean"
    serve = "serve"
    burn = "burn"
    bump = "bump"
    genkey = "genkey"
    documentation = "documentation"
    help = "help"

    def supports_cmdline(self) -> bool:
        """Verbs that hand everything after them to another program (or, for burn, take a device)."""
        return self in _CMDLINE_VERBS

    def needs_config(self) -> bool:
        return self not in (Verb.help, Verb.genkey, Verb.documentation)


_CMDLINE_VERBS = frozenset(
    {
        Verb.build,
        Verb.shell,
        Verb.boot,
        Verb.qemu,
        Verb.vmspawn,
        Verb.ssh,
        Verb.journalctl,
        Verb.coredumpctl,
        Verb.burn,
    }
)


class Distribution(enum.StrEnum):
    fedora = "fedora"
    debian = "debian"
    ubuntu = "ubuntu"
    arch = "arch"
    opensuse = "opensuse"
    mageia = "mageia"
    centos = "centos"
    rhel = "rhel"
    rhel_ubi = "rhel-ubi"
    openmandriva = "openmandriva"
    rocky = "rocky"
    alma = "alma"
    custom = "custom"

    def default_release(self) -> str:
        return _DEFAULT_RELEASES[self]

    def default_tools_tree_distribution(self) -> Distribution | None:
        # What mkosi v22's code does (its man page says Ubuntu images get a Debian tools tree; the code
        # gives them an Ubuntu one): CentOS and its rebuilds use Fedora, custom has no default.
        if self.is_centos_variant():
            return Distribution.fedora
        if self == Distribution.custom:
            return None
        return self

    def is_centos_variant(self) -> bool:
        return self in (Distribution.centos, Distribution.alma, Distribution.rocky, Distribution.rhel,
                        Distribution.rhel_ubi)


# mkosi v22's built-in default release of each distribution (used when the host runs another one).
_DEFAULT_RELEASES = {
    Distribution.fedora: "39",
    Distribution.debian: "testing",
    Distribution.ubuntu: "noble",
    Distribution.arch: "rolling",
    Distribution.opensuse: "tumbleweed",
    Distribution.mageia: "cauldron",
    Distribution.centos: "9",
    Distribution.rhel: "9",
    Distribution.rhel_ubi: "9",
    Distribution.openmandriva: "cooker",
    Distribution.rocky: "9",
    Distribution.alma: "9",
    Distribution.custom: "",
}


class Architecture(enum.StrEnum):
    alpha = "alpha"
    arc = "arc"
    arm = "arm"
    arm64 = "arm64"
    ia64 = "ia64"
    loongarch64 = "loongarch64"
    mips64_le = "mips64-le"
    mips_le = "mips-le"
    parisc = "parisc"
    ppc = "ppc"
    ppc64 = "ppc64"
    ppc64_le = "ppc64-le"
    riscv32 = "riscv32"
    riscv64 = "riscv64"
    s390 = "s390"
    s390x = "s390x"
    tilegx = "tilegx"
    x86 = "x86"
    x86_64 = "x86-64"

    @classmethod
    def from_uname(cls, machine: str) -> Architecture | None:
        if machine.startswith("armv"):
            return cls.arm
        return _UNAME.get(machine)

    def default_serial_tty(self) -> str:
        return {
            Architecture.arm: "ttyAMA0",
            Architecture.arm64: "ttyAMA0",
            Architecture.s390: "ttysclp0",
            Architecture.s390x: "ttysclp0",
            Architecture.ppc: "hvc0",
            Architecture.ppc64: "hvc0",
            Architecture.ppc64_le: "hvc0",
        }.get(self, "ttyS0")


_UNAME = {
    "aarch64": Architecture.arm64,
    "aarch64_be": Architecture.arm64,
    "alpha": Architecture.alpha,
    "arc": Architecture.arc,
    "arceb": Architecture.arc,
    "x86_64": Architecture.x86_64,
    "i686": Architecture.x86,
    "i586": Architecture.x86,
    "i486": Architecture.x86,
    "i386": Architecture.x86,
    "ia64": Architecture.ia64,
    "parisc64": Architecture.parisc,
    "parisc": Architecture.parisc,
    "loongarch64": Architecture.loongarch64,
    "mips64": Architecture.mips64_le,
    "mips": Architecture.mips_le,
    "ppc64le": Architecture.ppc64_le,
    "ppc64": Architecture.ppc64,
    "ppc": Architecture.ppc,
    "riscv64": Architecture.riscv64,
    "riscv32": Architecture.riscv32,
    "riscv": Architecture.riscv64,
    "s390x": Architecture.s390x,
    "s390": Architecture.s390,
    "tilegx": Architecture.tilegx,
}


class OutputFormat(enum.StrEnum):
    directory = "directory"
    tar = "tar"
    cpio = "cpio"
    disk = "disk"
    uki = "uki"
    esp = "esp"
    sysext = "sysext"
    confext = "confext"
    portable = "portable"
    none = "none"


# With Bootable=auto, only these formats are made bootable: a directory or tar of an image with a kernel
# is also used for containers, and a UKI with its default initrd costs a sub-build.
AUTO_BOOTABLE_FORMATS = (OutputFormat.disk, OutputFormat.esp, OutputFormat.uki)


class Compression(enum.StrEnum):
    none = "none"
    zstd = "zstd"
    xz = "xz"
    bz2 = "bz2"
    gz = "gz"
    lz4 = "lz4"
    lzma = "lzma"


# Spellings mkosi accepts besides the canonical names.
COMPRESSION_ALIASES = {"zst": Compression.zstd, "gzip": Compression.gz}


class ConfigFeature(enum.StrEnum):
    """A boolean that may also be left to "auto" detection."""

    auto = "auto"
    enabled = "enabled"
    disabled = "disabled"


class Bootloader(enum.StrEnum):
    none = "none"
    uki = "uki"
    systemd_boot = "systemd-boot"
    grub = "grub"


class BiosBootloader(enum.StrEnum):
    none = "none"
    grub = "grub"


class ShimBootloader(enum.StrEnum):
    none = "none"
    signed = "signed"
    unsigned = "unsigned"


class CacheOnly(enum.StrEnum):
    none = "none"
    metadata = "metadata"
    always = "always"


class QemuFirmware(enum.StrEnum):
    auto = "auto"
    linux = "linux"
    uefi = "uefi"
    uefi_secure_boot = "uefi-secure-boot"
    bios = "bios"


class Network(enum.StrEnum):
    interface = "interface"
    user = "user"
    none = "none"


class SecureBootSignTool(enum.StrEnum):
    auto = "auto"
    sbsign = "sbsign"
    pesign = "pesign"


class ManifestFormat(enum.StrEnum):
    json = "json"
    changelog = "changelog"


class KeySourceType(enum.StrEnum):
    file = "file"
    engine = "engine"


class DocFormat(enum.StrEnum):
    auto = "auto"
    markdown = "markdown"
    man = "man"
    pandoc = "pandoc"
    system = "system"
