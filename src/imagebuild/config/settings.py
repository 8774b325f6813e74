"""The settings table: one row per setting of mkosi v22's configuration language.

Parsing, the command line, the summary, the JSON output, the documentation, the "not supported yet"
check (config/support.py) and the cache keys (pipeline/inputs.py) are all driven by it.
Rows are in the order of the man page; SECTIONS gives the order of the sections.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imagebuild.config import host, relevance
from imagebuild.config.enums import (
    Architecture,
    BiosBootloader,
    Bootloader,
    CacheOnly,
    Compression,
    ConfigFeature,
    Distribution,
    ManifestFormat,
    Network,
    OutputFormat,
    QemuFirmware,
    SecureBootSignTool,
    ShimBootloader,
)
from imagebuild.config.errors import ConfigError, ValueProblem
from imagebuild.config.setting import Effect, Files, Getter, Kind, NotYet, Parser, Setting
from imagebuild.config.values import (
    VSOCK_CID_HASH,
    Ctx,
    KeySource,
    QemuDrive,
    TreeSpec,
    format_vsock_cid,
    parse_boolean,
    parse_bytes,
    parse_compression,
    parse_credential,
    parse_enum,
    parse_environment,
    parse_feature,
    parse_filename,
    parse_key_source,
    parse_nonnegative_int,
    parse_positive_int_text,
    parse_profile,
    parse_qemu_size,
    parse_root_password,
    parse_sector_size,
    parse_seed,
    parse_string,
    parse_tree,
    parse_vsock_cid,
    path_exists,
    resolve_path,
)
from imagebuild.config.versions import compare_versions, parse_version_condition, version_matches

SECTIONS = ("Config", "Distribution", "Output", "Content", "Validation", "Host")
MATCH_SECTIONS = ("Match", "TriggerMatch")


# ---- parsers -----------------------------------------------------------------------------------


def enum_parser(enum_type: type[Any]) -> Parser:
    def parse(value: str, ctx: Ctx) -> Any:
        return parse_enum(enum_type, value)

    return parse


def path_parser(*, required: bool = True, secret: bool = False, constants: tuple[str, ...] = ()) -> Parser:
    def parse(value: str, ctx: Ctx) -> Any:
        if value in constants:
            return value
        return resolve_path(value, ctx, required=required, secret=secret)

    return parse


def key_parser(value: str, ctx: Ctx) -> Path:
    # A private key: a file whose permissions matter, or (mkosi allows it) a name an engine understands.
    path = resolve_path(value, ctx, required=False, secret=True)
    return path if path_exists(path) else Path(value)


def tree_parser(*, absolute_target: bool = True) -> Parser:
    def parse(value: str, ctx: Ctx) -> TreeSpec:
        return parse_tree(value, ctx, absolute_target=absolute_target)

    return parse


def parse_drive(value: str, ctx: Ctx) -> QemuDrive:
    parts = value.split(":", maxsplit=3)
    accepted = "ID:SIZE[:DIRECTORY[:OPTIONS]], e.g. btrfs:10G"
    if not parts[0]:
        raise ValueProblem(f"the drive {value!r} has no ID", accepted)
    if len(parts) < 2:
        raise ValueProblem(f"the drive {value!r} has no size", accepted)
    if "/" in parts[0]:
        raise ValueProblem(f"the drive ID {parts[0]!r} contains '/'", accepted)
    directory = resolve_path(parts[2], ctx) if len(parts) > 2 and parts[2] else None
    options = parts[3] if len(parts) > 3 and parts[3] else None
    return QemuDrive(parts[0], parse_bytes(parts[1]), directory, options)


def parse_minimum_version(value: str, ctx: Ctx) -> str:
    if not any(c.isdigit() for c in value):
        raise ValueProblem(f"{value!r} is not a version", "a version such as 22")
    return value


def highest_version(old: str | None, new: str) -> str:
    return new if old is None or compare_versions(new, old) > 0 else old


def enum_values(enum_type: type[Any]) -> tuple[str, ...]:
    return tuple(m.value for m in enum_type)


# ---- matchers ----------------------------------------------------------------------------------


# Matchers also see conditions on unset settings (value None, never a match), so that a malformed
# condition is an error whatever the configuration holds.


def match_equal(condition: str, value: Any, ctx: Ctx) -> bool:
    if condition[:1] in ("<", ">", "="):
        # mkosi v22 compares only versions (ImageVersion=, SystemdVersion=) with operators.
        raise ValueProblem("[Match] compares this setting for equality only; drop the comparison operator "
                           "(only ImageVersion= and SystemdVersion= take <, <=, >, >=, ==, !=)")
    return value is not None and condition == str(value)


def match_enum(enum_type: type[Any]) -> Callable[[str, Any, Ctx], bool]:
    def match(condition: str, value: Any, ctx: Ctx) -> bool:
        wanted = parse_enum(enum_type, condition)
        return value is not None and bool(wanted == value)

    return match


def match_glob(condition: str, value: Any, ctx: Ctx) -> bool:
    return value is not None and fnmatch.fnmatchcase(str(value), condition)


def match_version(condition: str, value: Any, ctx: Ctx) -> bool:
    parse_version_condition(condition)
    return value is not None and version_matches(condition, str(value))


def match_feature(condition: str, value: Any, ctx: Ctx) -> bool:
    wanted = parse_feature(condition)
    return value is not None and bool(wanted == value)


def match_build_sources(condition: str, value: Any, ctx: Ctx) -> bool:
    wanted = condition.strip("/")
    return any(t.target is not None and str(t.target).strip("/") == wanted for t in value or ())


# ---- defaults ----------------------------------------------------------------------------------


def default_distribution(get: Getter) -> Distribution:
    return host.host().distribution or Distribution.custom


def default_release(get: Getter) -> str:
    facts = host.host()
    dist: Distribution = get("distribution")
    if dist == facts.distribution and facts.release:
        return facts.release
    return dist.default_release()


def default_architecture(get: Getter) -> Architecture:
    arch = host.host().architecture
    if arch is None:
        raise ConfigError(
            "the architecture of this machine is not one mkosi knows; set Architecture= "
            f"(accepted: {', '.join(enum_values(Architecture))})"
        )
    return arch


def default_output(get: Getter) -> str:
    name: str = get("image_id") or get("_image") or "image"
    version = get("image_version")
    return f"{name}_{version}" if version else name


def default_compression(get: Getter) -> Compression:
    if get("format") in (OutputFormat.tar, OutputFormat.cpio, OutputFormat.uki, OutputFormat.esp):
        dist: Distribution = get("distribution")
        release: str = get("release")
        old_centos = dist.is_centos_variant() and release.isdigit() and int(release) <= 8
        if old_centos or (dist == Distribution.ubuntu and release == "focal"):
            return Compression.xz
        return Compression.zstd
    return Compression.none


def default_source_date_epoch(get: Getter) -> int | None:
    import os

    value = get("environment").get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    try:
        return parse_nonnegative_int(value)
    except ValueProblem as e:
        raise ConfigError(f"$SOURCE_DATE_EPOCH: {e.describe()}") from None


def default_kernel_command_line(get: Getter) -> list[str]:
    arch: Architecture = get("architecture")
    return [f"console={arch.default_serial_tty()}"]


def default_tools_tree_release(get: Getter) -> str | None:
    dist: Distribution | None = get("tools_tree_distribution")
    return dist.default_release() if dist else None


def default_tools_tree_mirror(get: Getter) -> str | None:
    mirror: str | None = get("mirror")
    return mirror if mirror and get("distribution") == get("tools_tree_distribution") else None


# ---- shorthands for rows -----------------------------------------------------------------------


def boolean(name: str, section: str, default: bool = False, **kw: Any) -> Setting:
    kw.setdefault("metavar", "BOOL")
    kw.setdefault("flag", "yes")
    return Setting(name, section, Kind.SCALAR, parse_boolean, default=default, **kw)


def feature(name: str, section: str, **kw: Any) -> Setting:
    kw.setdefault("metavar", "FEATURE")
    kw.setdefault("choices", ("auto", "yes", "no"))
    return Setting(name, section, Kind.SCALAR, parse_feature, default=ConfigFeature.auto, flag="yes", **kw)


def string(name: str, section: str, **kw: Any) -> Setting:
    return Setting(name, section, Kind.SCALAR, parse_string, **kw)


def choice(name: str, section: str, enum_type: type[Any], **kw: Any) -> Setting:
    kw.setdefault("metavar", name.upper())
    return Setting(name, section, Kind.SCALAR, enum_parser(enum_type), choices=enum_values(enum_type), **kw)


def path(name: str, section: str, *, required: bool = True, secret: bool = False,
         constants: tuple[str, ...] = (), **kw: Any) -> Setting:
    kw.setdefault("metavar", "PATH")
    return Setting(name, section, Kind.SCALAR,
                   path_parser(required=required, secret=secret, constants=constants), **kw)


def strings(name: str, section: str, **kw: Any) -> Setting:
    return Setting(name, section, Kind.LIST, parse_string, default=(), **kw)


def paths(name: str, section: str, *, required: bool = True, **kw: Any) -> Setting:
    kw.setdefault("metavar", "PATH")
    return Setting(name, section, Kind.LIST, path_parser(required=required), default=(), **kw)


def trees(name: str, section: str, *, absolute_target: bool = True, **kw: Any) -> Setting:
    kw.setdefault("metavar", "SOURCE[:TARGET]")
    return Setting(name, section, Kind.LIST, tree_parser(absolute_target=absolute_target), default=(), **kw)


SCRIPTS_HELP = "Comma-separated list of {} scripts (see the Scripts section of mkosi's man page)."


# Include=mkosi-initrd / mkosi-tools: imagebuild has no copies of mkosi's own configurations.
NOT_YET_BUILTIN_INCLUDE = NotYet(
    "mkosi's built-in configurations are not part of imagebuild; it builds the default initrd and tools tree "
    "itself: drop the Include= (or include a configuration file of your own)",
    needed_by=relevance.includes_builtin_config,
)

# Every row says what its value changes (effect=, default: the image), what the files it names are (files=,
# for path-valued settings), when its value matters (matters=) and what the builder does not do yet
# (not_yet=; all other settings are acted on).

SETTINGS: tuple[Setting, ...] = (
    # ---- [Config]
    Setting("Profile", "Config", Kind.SCALAR, parse_profile, match=match_equal, metavar="NAME",
            effect=Effect.INSTALL,
            help="Select the given profile from mkosi.profiles/ (a file NAME.conf or a directory NAME)."),
    Setting("Include", "Config", Kind.LIST, path_parser(constants=("mkosi-initrd", "mkosi-tools")),
            default=(), reset=False, metavar="PATH",
            effect=Effect.RESOLVED, files=Files.CONTENT, not_yet=NOT_YET_BUILTIN_INCLUDE,
            help="Include extra configuration from the given file or directory right away "
                 "(with @Include=: after all other configuration). Each path is read once."),
    Setting("InitrdInclude", "Config", Kind.LIST, path_parser(), default=(), reset=False, metavar="PATH",
            files=Files.CONTENT,
            help="Like Include=, but for the configuration of the default initrd."),
    strings("Images", "Config", long=("--image",), metavar="IMAGE", compat_names=("Presets",),
            effect=Effect.RESOLVED,
            help="Build only these images of mkosi.images/ (and their dependencies). "
                 "Only has an effect in the global configuration."),
    strings("Dependencies", "Config", long=("--dependency",), metavar="IMAGE",
            effect=Effect.PROCESS,
            help="Images of mkosi.images/ that this image depends on; they are built first."),
    Setting("MinimumVersion", "Config", Kind.SCALAR, parse_minimum_version, merge=highest_version,
            metavar="VERSION",
            effect=Effect.RESOLVED,
            help="The minimum mkosi version this configuration needs; the highest one given wins."),
    # ---- [Distribution]
    choice("Distribution", "Distribution", Distribution, short="-d", specifier="d",
           default_factory=default_distribution, default_doc="the host's distribution, or custom",
           match=match_enum(Distribution),
           effect=Effect.INSTALL,
           help="The distribution to install in the image."),
    string("Release", "Distribution", short="-r", specifier="r", default_factory=default_release,
           default_doc="the host's release if the host runs the same distribution, "
                       "else the distribution's default (debian: testing)",
           match=match_equal, metavar="RELEASE",
           effect=Effect.INSTALL,
           help="The release of the distribution to install."),
    choice("Architecture", "Distribution", Architecture, specifier="a",
           default_factory=default_architecture, default_doc="the host's architecture",
           match=match_enum(Architecture),
           effect=Effect.INSTALL,
           help="The architecture to build the image for."),
    string("Mirror", "Distribution", short="-m", metavar="URL", unset_text="default",
           effect=Effect.INSTALL,
           help="The mirror to download distribution packages from."),
    string("LocalMirror", "Distribution", metavar="URL", label="Local Mirror (build)",
           effect=Effect.INSTALL,
           help="A local, flat mirror used for the build only; Mirror= is configured in the image."),
    boolean("RepositoryKeyCheck", "Distribution", default=True, label="Repo Signature/Key check",
            effect=Effect.INSTALL,
            help="Check signatures and keys of repositories."),
    strings("Repositories", "Distribution", metavar="REPOS",
            effect=Effect.INSTALL,
            help="Enable repositories (or components) that are disabled by default."),
    Setting("CacheOnly", "Distribution", Kind.SCALAR,
            lambda v, ctx: CacheOnly.always if v.lower() in ("1", "yes", "y", "true", "t", "on")
            else CacheOnly.none if v.lower() in ("0", "no", "n", "false", "f", "off")
            else parse_enum(CacheOnly, v),
            default=CacheOnly.none, flag="always", metavar="CACHEONLY", choices=enum_values(CacheOnly),
            label="Use Only Package Cache",
            effect=Effect.INSTALL,
            help="none: sync repository metadata and download packages; metadata: do not sync the "
                 "metadata; always: never contact the network. A boolean means always or none."),
    trees("PackageManagerTrees", "Distribution", long=("--package-manager-tree",),
          default_factory=lambda get: list(get("skeleton_trees")), default_doc="the SkeletonTrees=",
          effect=Effect.INSTALL, files=Files.CONTENT,
          help="Trees copied into the workspace to configure the package manager, not into the image."),
    # ---- [Output]
    choice("Format", "Output", OutputFormat, short="-t", specifier="t", default=OutputFormat.disk,
           match=match_enum(OutputFormat), label="Output Format",
           help="The image format: directory, tar, cpio, disk, uki, esp, sysext, confext, portable, none."),
    Setting("ManifestFormat", "Output", Kind.LIST, enum_parser(ManifestFormat), default=(),
            metavar="FORMAT", choices=enum_values(ManifestFormat), label="Manifest Formats",
            help="Manifests to write: json and/or changelog."),
    Setting("Output", "Output", Kind.SCALAR, parse_filename, short="-o", specifier="o",
            default_factory=default_output, default_doc="ImageId[_ImageVersion], or image",
            metavar="NAME",
            help="The name of the output image (without directory)."),
    Setting("CompressOutput", "Output", Kind.SCALAR, parse_compression, default_factory=default_compression,
            default_doc="zstd for tar, cpio, uki and esp, none otherwise", flag="yes", metavar="ALG",
            choices=enum_values(Compression), label="Compression",
            help="Compress the output: a boolean or an algorithm (zstd, xz, ...)."),
    Setting("CompressLevel", "Output", Kind.SCALAR, parse_nonnegative_int, default=3, metavar="LEVEL",
            label="Compression Level", help="The compression level."),
    path("OutputDirectory", "Output", required=False, short="-O", long=("--output-dir",), specifier="O",
         paths=("mkosi.output",), default_doc="mkosi.output/ if it exists, else the current directory",
         metavar="DIR", unset_text="the configuration directory",
         effect=Effect.PROCESS, files=Files.LOCATION,
         help="Where to place the generated artifacts."),
    path("WorkspaceDirectory", "Output", required=False, long=("--workspace-dir",), metavar="DIR",
         unset_text="default",
         effect=Effect.PROCESS, files=Files.LOCATION,
         help="Where to keep temporary data while building."),
    path("CacheDirectory", "Output", required=False, long=("--cache-dir",), paths=("mkosi.cache",),
         effect=Effect.PROCESS, files=Files.LOCATION,
         help="The directory for incremental cache images (mkosi.cache/ if it exists)."),
    path("PackageCacheDirectory", "Output", required=False, long=("--package-cache-dir",),
         unset_text="default",
         effect=Effect.PROCESS, files=Files.LOCATION,
         help="The package manager's download cache."),
    path("BuildDirectory", "Output", required=False, long=("--build-dir",), paths=("mkosi.builddir",),
         effect=Effect.PROCESS, files=Files.LOCATION,
         help="A persistent out-of-tree build directory for build scripts ($BUILDDIR)."),
    string("ImageVersion", "Output", specifier="v", match=match_version, paths=("mkosi.version",),
           path_read_text=True, metavar="VERSION",
           help="The image version (also read from mkosi.version)."),
    string("ImageId", "Output", specifier="i", match=match_glob, metavar="ID", label="Image ID",
           help="The image identifier."),
    boolean("SplitArtifacts", "Output", help="Write out split partition files (disk images)."),
    paths("RepartDirectories", "Output", long=("--repart-dir",), paths=("mkosi.repart",),
          files=Files.CONTENT,
          help="Directories with systemd-repart partition definitions (mkosi.repart/ if it exists)."),
    Setting("SectorSize", "Output", Kind.SCALAR, parse_sector_size, metavar="BYTES",
            help="The sector size systemd-repart uses for disk images."),
    boolean("RepartOffline", "Output", default=True,
            help="Build disk images without loopback devices."),
    boolean("Overlay", "Output", help="Only output the changes on top of the BaseTrees=."),
    feature("UseSubvolumes", "Output",
            matters=lambda c: c.use_subvolumes == ConfigFeature.enabled,
            not_yet=NotYet("directory outputs are plain directories; use UseSubvolumes=no or auto"),
            help="Use btrfs subvolumes for directory outputs."),
    Setting("Seed", "Output", Kind.SCALAR, parse_seed, metavar="UUID", default_doc="random", unset_text="random",
            help="The seed systemd-repart uses (a UUID, or random)."),
    # ---- [Content]
    strings("Packages", "Content", short="-p", long=("--package",), metavar="PACKAGE",
            effect=Effect.INSTALL,
            help="Packages to install in the image."),
    strings("BuildPackages", "Content", long=("--build-package",), metavar="PACKAGE",
            effect=Effect.INSTALL,
            help="Packages installed only in the overlay used by build scripts."),
    paths("PackageDirectories", "Content", long=("--package-directory",),
          effect=Effect.INSTALL, files=Files.CONTENT,
          help="Directories with extra packages made available during the build."),
    boolean("WithRecommends", "Content",
            effect=Effect.INSTALL,
            help="Install recommended packages."),
    boolean("WithDocs", "Content", default=True, label="With Documentation",
            effect=Effect.INSTALL,
            help="Install documentation."),
    paths("BaseTrees", "Content", required=False, long=("--base-tree",),
          effect=Effect.INSTALL, files=Files.CONTENT,
          help="Directories, tar files or disk images used as the base of the image."),
    trees("SkeletonTrees", "Content", long=("--skeleton-tree",),
          paths=("mkosi.skeleton", "mkosi.skeleton.tar"),
          path_sets_default=False,
          effect=Effect.INSTALL, files=Files.CONTENT,
          help="Trees copied into the image before packages are installed (mkosi.skeleton/ too)."),
    trees("ExtraTrees", "Content", long=("--extra-tree",), paths=("mkosi.extra", "mkosi.extra.tar"),
          path_sets_default=False,
          files=Files.CONTENT,
          help="Trees copied into the image after packages are installed (mkosi.extra/ too)."),
    strings("RemovePackages", "Content", long=("--remove-package",), metavar="PACKAGE",
            help="Packages to remove at the end."),
    strings("RemoveFiles", "Content", long=("--remove-files",), metavar="GLOB",
            help="Globs of files to remove at the end."),
    feature("CleanPackageMetadata", "Content", label="Clean Package Manager Metadata",
            help="Remove package manager databases and metadata (auto: if the "
                 "package manager is not in the image)."),
    Setting("SourceDateEpoch", "Content", Kind.SCALAR, parse_nonnegative_int,
            default_factory=default_source_date_epoch, also_in=("Output",), metavar="TIMESTAMP",
            default_doc="$SOURCE_DATE_EPOCH from Environment= or the host",
            effect=Effect.INSTALL,
            help="Reset file times to this timestamp and export $SOURCE_DATE_EPOCH."),
    paths("SyncScripts", "Content", long=("--sync-script",), paths=("mkosi.sync",), path_sets_default=False,
          effect=Effect.INSTALL, files=Files.CONTENT,
          not_yet=NotYet("run it before imagebuild, or do its work in a prepare script"),
          help=SCRIPTS_HELP.format("sync")),
    paths("PrepareScripts", "Content", long=("--prepare-script",),
          paths=("mkosi.prepare", "mkosi.prepare.chroot"), path_sets_default=False,
          compat_names=("PrepareScript",),
          effect=Effect.INSTALL, files=Files.CONTENT,
          help=SCRIPTS_HELP.format("prepare")),
    paths("BuildScripts", "Content", long=("--build-script",), paths=("mkosi.build", "mkosi.build.chroot"),
          path_sets_default=False, compat_names=("BuildScript",),
          files=Files.CONTENT,
          help=SCRIPTS_HELP.format("build")),
    paths("PostInstallationScripts", "Content", attr="postinst_scripts", long=("--postinst-script",),
          paths=("mkosi.postinst", "mkosi.postinst.chroot"), path_sets_default=False,
          compat_names=("PostInstallationScript",), label="Postinstall Scripts",
          files=Files.CONTENT,
          help=SCRIPTS_HELP.format("post-installation")),
    paths("FinalizeScripts", "Content", long=("--finalize-script",),
          paths=("mkosi.finalize", "mkosi.finalize.chroot"), path_sets_default=False,
          compat_names=("FinalizeScript",),
          files=Files.CONTENT,
          help=SCRIPTS_HELP.format("finalize")),
    trees("BuildSources", "Content", absolute_target=False,
          default_factory=lambda get: [TreeSpec(get("_directory"), None)],
          default_doc="the configuration directory, mounted on /work/src",
          match=match_build_sources, metavar="SOURCE[:TARGET]",
          effect=relevance.build_sources_effect, files=Files.CONTENT, matters=relevance.has_scripts,
          help="Directories mounted for scripts, below /work/src."),
    boolean("BuildSourcesEphemeral", "Content",
            help="Reset the build sources after scripts ran."),
    Setting("Environment", "Content", Kind.DICT, parse_environment, default={}, delimiter=" ",
            unescape=True, metavar="NAME[=VALUE]", label="Script Environment",
            effect=Effect.INSTALL,
            help="Variables for package managers and scripts: NAME=VALUE, or NAME to pass "
                 "the host's value through."),
    paths("EnvironmentFiles", "Content", long=("--env-file",), paths=("mkosi.env",), path_sets_default=False,
          effect=Effect.INSTALL, files=Files.CONTENT,
          help="Files with NAME=VALUE lines for the script environment (mkosi.env too)."),
    boolean("WithTests", "Content", default=True, short="-T", long=("--without-tests",), flag="no",
            label="Run Tests in Build Scripts",
            effect=Effect.INSTALL,
            help="Run tests in build scripts ($WITH_TESTS); --without-tests/-T turns them off."),
    boolean("WithNetwork", "Content", label="Scripts With Network",
            effect=Effect.INSTALL,
            help="Give build scripts network access."),
    feature("Bootable", "Content", match=match_feature,
            effect=Effect.INSTALL,
            help="Make the image bootable (auto: if a kernel and bootloader are found)."),
    choice("Bootloader", "Content", Bootloader, default=Bootloader.systemd_boot,
           matters=relevance.gets_boot_loader,
           help="The UEFI boot loader: none, systemd-boot, uki or grub."),
    choice("BiosBootloader", "Content", BiosBootloader, default=BiosBootloader.none, label="BIOS Bootloader",
           matters=relevance.gets_bios_boot_loader,
           help="The BIOS boot loader: none or grub."),
    choice("ShimBootloader", "Content", ShimBootloader, default=ShimBootloader.none,
           matters=lambda c: relevance.gets_uefi_boot_loader(c) and c.shim_bootloader != ShimBootloader.none,
           help="Install shim: none, unsigned or signed."),
    feature("UnifiedKernelImages", "Content",
            help="Use unified kernel images with systemd-boot or grub."),
    paths("Initrds", "Content", required=False, long=("--initrd",),
          files=Files.CONTENT,
          help="User-provided initrds."),
    strings("InitrdPackages", "Content", long=("--initrd-package",), metavar="PACKAGE",
            help="Extra packages for the default initrd."),
    boolean("MicrocodeHost", "Content",
            matters=lambda c: c.microcode_host and relevance.builds_initrds(c),
            not_yet=NotYet("use MicrocodeHost=no: the initrds carry the microcode the image's packages install"),
            help="Only include the microcode of the host's CPU."),
    Setting("KernelCommandLine", "Content", Kind.LIST, parse_string, delimiter=" ",
            default_factory=default_kernel_command_line, default_doc="console=ttyS0 (ttyAMA0, ttysclp0, "
            "hvc0 on arm, s390, ppc)", metavar="OPTIONS",
            help="The kernel command line of the image."),
    strings("KernelModulesInclude", "Content", metavar="REGEX",
            help="Regexes of kernel modules to include."),
    strings("KernelModulesExclude", "Content", metavar="REGEX",
            help="Regexes of kernel modules to exclude."),
    boolean("KernelModulesIncludeHost", "Content",
            help="Include the modules loaded on the host."),
    boolean("KernelModulesInitrd", "Content", default=True,
            help="Add an initrd with the kernel modules to bootable images."),
    strings("KernelModulesInitrdInclude", "Content", metavar="REGEX",
            help="Like KernelModulesInclude=, for the kernel modules initrd."),
    strings("KernelModulesInitrdExclude", "Content", metavar="REGEX",
            help="Like KernelModulesExclude=, for the kernel modules initrd."),
    boolean("KernelModulesInitrdIncludeHost", "Content",
            help="Like KernelModulesIncludeHost=, for the kernel modules initrd."),
    string("Locale", "Content", unset_text="default", metavar="LOCALE",
           help="The system locale (systemd-firstboot)."),
    string("LocaleMessages", "Content", unset_text="default", metavar="LOCALE",
           help="The messages locale."),
    string("Keymap", "Content", unset_text="default", metavar="KEYMAP",
           help="The system keymap."),
    string("Timezone", "Content", unset_text="default", metavar="TIMEZONE",
           help="The system timezone."),
    string("Hostname", "Content", unset_text="default", metavar="HOSTNAME",
           help="The system hostname."),
    string("RootShell", "Content", unset_text="default", metavar="SHELL",
           help="The shell of root."),
    Setting("RootPassword", "Content", Kind.SCALAR, parse_root_password, paths=("mkosi.rootpw",),
            path_read_text=True, path_secret=True, metavar="PASSWORD",
            show=lambda v: "(set)" if v else "(default)",
            help="The root password (hashed:HASH for a hash); mkosi.rootpw if it exists."),
    boolean("Autologin", "Content", help="Log root in automatically on the consoles."),
    boolean("MakeInitrd", "Content", help="Make the image usable as an initramfs."),
    boolean("Ssh", "Content", label="SSH",
            help="Install an sshd socket unit for mkosi ssh over VSock."),
    feature("SELinuxRelabel", "Content", label="SELinux Relabel",
            matters=relevance.relabels_selinux,
            help="Relabel files for the image's SELinux policy."),
    # ---- [Validation]
    boolean("SecureBoot", "Validation", label="UEFI SecureBoot",
            help="Sign systemd-boot and unified kernel images for UEFI SecureBoot."),
    boolean("SecureBootAutoEnroll", "Validation", default=True, label="UEFI SecureBoot AutoEnroll",
            help="Enroll the SecureBoot keys automatically in virtual machines."),
    Setting("SecureBootKey", "Validation", Kind.SCALAR, key_parser, paths=("mkosi.key",), metavar="PATH",
            label="SecureBoot Signing Key",
            files=Files.CONTENT,
            help="The private key for SecureBoot signing (mkosi.key)."),
    Setting("SecureBootKeySource", "Validation", Kind.SCALAR, parse_key_source, default=KeySource(),
            metavar="SOURCE[:ENGINE]", label="SecureBoot Signing Key Source",
            help="Where SecureBootKey= comes from: file, or engine:NAME."),
    path("SecureBootCertificate", "Validation", paths=("mkosi.crt",),
         files=Files.CONTENT,
         help="The X.509 certificate for SecureBoot signing (mkosi.crt)."),
    choice("SecureBootSignTool", "Validation", SecureBootSignTool, default=SecureBootSignTool.auto,
           help="The tool signing PE binaries: auto, sbsign or pesign."),
    Setting("VerityKey", "Validation", Kind.SCALAR, key_parser, paths=("mkosi.key",), metavar="PATH",
            label="Verity Signing Key",
            files=Files.CONTENT,
            help="The private key for the verity signature (mkosi.key)."),
    Setting("VerityKeySource", "Validation", Kind.SCALAR, parse_key_source, default=KeySource(),
            metavar="SOURCE[:ENGINE]", label="Verity Signing Key Source",
            help="Where VerityKey= comes from: file, or engine:NAME."),
    path("VerityCertificate", "Validation", paths=("mkosi.crt",),
         files=Files.CONTENT,
         help="The X.509 certificate for the verity signature (mkosi.crt)."),
    feature("SignExpectedPcr", "Validation", label="Sign Expected PCRs",
            help="Embed a signature of the expected PCR values in UKIs."),
    path("Passphrase", "Validation", required=False, secret=True, paths=("mkosi.passphrase",),
         files=Files.CONTENT,
         help="A file with the LUKS passphrase (mkosi.passphrase); mode 0600 or stricter."),
    boolean("Checksum", "Validation", help="Write a SHA256SUMS file."),
    boolean("Sign", "Validation", help="Sign the SHA256SUMS file with gpg (implies Checksum=)."),
    string("Key", "Validation", metavar="KEY", label="GPG Key", help="The gpg key to sign with."),
    # ---- [Host]
    boolean("Incremental", "Host", short="-i",
            effect=Effect.PROCESS,
            help="Cache the image after packages are installed and prepare scripts ran."),
    path("NSpawnSettings", "Host", long=("--settings",), paths=("mkosi.nspawn",),
         label="NSpawn Settings",
         effect=Effect.RUNTIME, files=Files.CONTENT,
         help="An .nspawn settings file for boot and shell (mkosi.nspawn)."),
    Setting("ExtraSearchPaths", "Host", Kind.LIST, path_parser(), default=(), delimiter=",:",
            long=("--extra-search-path",), metavar="PATH",
            effect=Effect.PROCESS, files=Files.LOCATION,
            not_yet=NotYet("add the directories to $PATH, or take the tools from ToolsTree="),
            help="Directories to look for tools in before $PATH."),
    boolean("QemuGui", "Host", label="QEMU GUI",
            effect=Effect.RUNTIME, matters=lambda c: c.qemu_gui,
            not_yet=NotYet("qemu runs on the serial console here; use QemuGui=no"),
            help="Start qemu with a graphical window."),
    Setting("QemuSmp", "Host", Kind.SCALAR, parse_positive_int_text, default="1", metavar="SMP",
            label="QEMU CPU Cores",
            effect=Effect.RUNTIME,
            help="The number of guest CPUs."),
    Setting("QemuMem", "Host", Kind.SCALAR, parse_qemu_size, default="2G", metavar="MEM",
            label="QEMU Memory",
            effect=Effect.RUNTIME,
            help="The guest's memory (qemu -m)."),
    feature("QemuKvm", "Host", label="QEMU Use KVM",
            effect=Effect.RUNTIME,
            help="Use KVM acceleration."),
    feature("QemuVsock", "Host", label="QEMU Use VSock",
            effect=Effect.RUNTIME, matters=relevance.uses_vsock,
            help="Give the guest a VSock (the SSH transport where /dev/vhost-vsock exists)."),
    Setting("QemuVsockConnectionId", "Host", Kind.SCALAR, parse_vsock_cid, default=VSOCK_CID_HASH,
            long=("--qemu-vsock-cid",), metavar="NUMBER|auto|hash", label="QEMU VSock Connection ID",
            show=format_vsock_cid,
            effect=Effect.RUNTIME, matters=relevance.uses_vsock,
            not_yet=NotYet("a free connection ID is picked for every machine; leave QemuVsockConnectionId= unset"),
            help="The VSock connection ID: a number, hash (derived from the image path) or auto."),
    feature("QemuSwtpm", "Host", label="QEMU Use Swtpm",
            effect=Effect.RUNTIME,
            help="Give the guest a TPM (swtpm)."),
    boolean("QemuCdrom", "Host", label="QEMU Use CD-ROM",
            effect=Effect.RUNTIME,
            help="Attach the image as a CD-ROM."),
    choice("QemuFirmware", "Host", QemuFirmware, default=QemuFirmware.auto, label="QEMU Firmware",
           effect=Effect.RUNTIME,
           help="The firmware: auto, uefi, uefi-secure-boot, bios or linux."),
    path("QemuFirmwareVariables", "Host", constants=("custom", "microsoft"), label="QEMU Firmware Variables",
         effect=Effect.RUNTIME, files=Files.CONTENT,
         help="The firmware variables file, or microsoft, or custom."),
    path("QemuKernel", "Host", label="QEMU Kernel",
         effect=Effect.RUNTIME, files=Files.CONTENT,
         help="The kernel for direct kernel boot."),
    Setting("QemuDrives", "Host", Kind.LIST, parse_drive, default=(), delimiter=" ", long=("--qemu-drive",),
            metavar="DRIVE", label="QEMU Drives",
            effect=Effect.RUNTIME, files=Files.LOCATION,
            help="Extra drives: ID:SIZE[:DIRECTORY[:OPTIONS]]."),
    Setting("QemuArgs", "Host", Kind.LIST, parse_string, default=(), delimiter=" ", unescape=True,
            long=("--qemu-args",), metavar="ARGS", label="QEMU Extra Arguments",
            effect=Effect.RUNTIME,
            help="Extra arguments for qemu (shell quoting applies)."),
    boolean("Ephemeral", "Host",
            effect=Effect.RUNTIME,
            help="Run shell, boot and qemu on a snapshot that is removed afterwards."),
    Setting("Credentials", "Host", Kind.DICT, parse_credential, default={}, delimiter=" ", unescape=True,
            long=("--credential",), paths=("mkosi.credentials",), path_sets_default=False,
            metavar="NAME=VALUE",
            show=lambda v: "\n".join(v) if v else "none",
            effect=Effect.RUNTIME,
            help="Credentials passed to the container or VM (mkosi.credentials/ too)."),
    Setting("KernelCommandLineExtra", "Host", Kind.LIST, parse_string, default=(), delimiter=" ",
            metavar="OPTIONS", label="Extra Kernel Command Line",
            effect=Effect.RUNTIME,
            help="Arguments appended to the kernel command line when booting."),
    boolean("Acl", "Host", label="Use ACLs",
            effect=Effect.PROCESS,
            help="Set ACLs so the calling user can remove the output."),
    path("ToolsTree", "Host", required=False, constants=("default",), paths=("mkosi.tools",), flag="default",
         effect=Effect.INSTALL, files=Files.CONTENT,
         help="A tree to take the build tools from; default builds one (mkosi.tools/ if it exists)."),
    choice("ToolsTreeDistribution", "Host", Distribution,
           default_factory=lambda get: get("distribution").default_tools_tree_distribution(),
           default_doc="the image's distribution (fedora for CentOS and its rebuilds, none for custom)",
           effect=Effect.INSTALL, matters=relevance.uses_default_tools_tree,
           help="The distribution of the default tools tree."),
    string("ToolsTreeRelease", "Host", default_factory=default_tools_tree_release, metavar="RELEASE",
           default_doc="the default release of the tools tree distribution",
           effect=Effect.INSTALL, matters=relevance.uses_default_tools_tree,
           help="The release of the default tools tree."),
    string("ToolsTreeMirror", "Host", default_factory=default_tools_tree_mirror, metavar="URL", unset_text="default",
           default_doc="Mirror= if the distributions are the same",
           effect=Effect.INSTALL, matters=relevance.uses_default_tools_tree,
           help="The mirror for the default tools tree."),
    strings("ToolsTreeRepositories", "Host", long=("--tools-tree-repository",), metavar="REPOS",
            effect=Effect.INSTALL, matters=relevance.uses_default_tools_tree,
            help="Like Repositories=, for the default tools tree."),
    trees("ToolsTreePackageManagerTrees", "Host", long=("--tools-tree-package-manager-tree",),
          effect=Effect.INSTALL, files=Files.CONTENT,
          matters=lambda c: relevance.uses_default_tools_tree(c) and bool(c.tools_tree_package_manager_trees),
          not_yet=NotYet("configure the tools tree's repositories with ToolsTreeMirror= and "
                         "ToolsTreeRepositories="),
          help="Like PackageManagerTrees=, for the default tools tree."),
    strings("ToolsTreePackages", "Host", long=("--tools-tree-packages", "--tools-tree-package"),
            metavar="PACKAGE",
            effect=Effect.INSTALL, matters=relevance.uses_default_tools_tree,
            help="Extra packages for the default tools tree."),
    trees("RuntimeTrees", "Host", absolute_target=False, long=("--runtime-tree",),
          effect=Effect.RUNTIME, files=Files.CONTENT,
          help="Directories mounted into containers and VMs (relative targets below /root/src)."),
    Setting("RuntimeSize", "Host", Kind.SCALAR, parse_bytes, metavar="SIZE",
            effect=Effect.RUNTIME,
            help="Grow disk images to this size before booting them."),
    feature("RuntimeScratch", "Host",
            effect=Effect.RUNTIME,
            help="Mount scratch space on /var/tmp when booting."),
    choice("RuntimeNetwork", "Host", Network, default=Network.user,
           effect=Effect.RUNTIME,
           help="Networking when booting: user, interface or none."),
    path("SshKey", "Host", secret=True, paths=("mkosi.key",), label="SSH Signing Key",
         effect=Effect.RUNTIME, files=Files.CONTENT,
         help="The private key mkosi ssh uses (mkosi.key)."),
    path("SshCertificate", "Host", paths=("mkosi.crt",), label="SSH Certificate",
         effect=Effect.RUNTIME, files=Files.CONTENT,
         help="The certificate provisioned as SSH key (mkosi.crt)."),
)

# The settings the builder acts on for every value (derived from the rows' not_yet).
SUPPORTED: frozenset[str] = frozenset(s.name for s in SETTINGS if s.supported)

BY_NAME: dict[str, Setting] = {}
for _s in SETTINGS:
    BY_NAME[_s.name] = _s
    for _alias in _s.compat_names:
        BY_NAME[_alias] = _s
BY_ATTR: dict[str, Setting] = {s.attr: s for s in SETTINGS}
BY_SPECIFIER: dict[str, Setting] = {s.specifier: s for s in SETTINGS if s.specifier}
BY_OPTION: dict[str, Setting] = {o: s for s in SETTINGS for o in s.options}

_NON_SETTING_MATCHES = ("PathExists", "SystemdVersion", "HostArchitecture")
MATCH_NAMES: tuple[str, ...] = (
    *(s.name for s in SETTINGS if s.match is not None),
    *_NON_SETTING_MATCHES,
)
