"""The resolved configuration of one image (Config) and the command-line-only options (Args)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
    Verb,
)
from imagebuild.config.values import KeySource, QemuDrive, RootPassword, TreeSpec


@dataclass(frozen=True)
class Args:
    """The options that exist only on the command line."""

    verb: Verb
    cmdline: list[str]
    directory: Path | None
    force: int
    debug: bool
    debug_shell: bool
    debug_workspace: bool
    json: bool
    auto_bump: bool
    genkey_common_name: str
    genkey_valid_days: str
    doc_format: str
    # --version was given: print the version and do nothing else.
    version: bool = False
    # --no-install-cache: install from the archive even if the install cache has the tree.
    no_install_cache: bool = False
    # --no-pager: help and the Markdown documentation are printed, not paged.
    pager: bool = True


# repr and eq are written generically below: generating them for ~140 fields would cost import time.
@dataclass(frozen=True, repr=False, eq=False)
class Config:
    """Every setting of one image, resolved: defaults applied, paths absolute, specifiers expanded.

    Fields are named after the settings in snake_case (PostInstallationScripts is postinst_scripts).
    ToolsTree= is None, the string "default", or a path; QemuFirmwareVariables= likewise with
    "microsoft"/"custom"; Seed= None means random; QemuVsockConnectionId= is a CID or -1 (auto) / -2 (hash).
    """

    # Where the image was read from: the -C directory (or mkosi.images/NAME for a sub-image).
    directory: Path
    # None for the main image, else the name of the image in mkosi.images/.
    image: str | None

    # [Config]
    profile: str | None
    include: list[Path | str]
    initrd_include: list[Path]
    images: list[str]
    dependencies: list[str]
    minimum_version: str | None

    # [Distribution]
    distribution: Distribution
    release: str
    architecture: Architecture
    mirror: str | None
    local_mirror: str | None
    repository_key_check: bool
    repositories: list[str]
    cache_only: CacheOnly
    package_manager_trees: list[TreeSpec]

    # [Output]
    format: OutputFormat
    manifest_format: list[ManifestFormat]
    output: str
    compress_output: Compression
    compress_level: int
    output_directory: Path | None
    workspace_directory: Path | None
    cache_directory: Path | None
    package_cache_directory: Path | None
    build_directory: Path | None
    image_version: str | None
    image_id: str | None
    split_artifacts: bool
    repart_directories: list[Path]
    sector_size: int | None
    repart_offline: bool
    overlay: bool
    use_subvolumes: ConfigFeature
    seed: str | None

    # [Content]
    packages: list[str]
    build_packages: list[str]
    package_directories: list[Path]
    with_recommends: bool
    with_docs: bool
    base_trees: list[Path]
    skeleton_trees: list[TreeSpec]
    extra_trees: list[TreeSpec]
    remove_packages: list[str]
    remove_files: list[str]
    clean_package_metadata: ConfigFeature
    source_date_epoch: int | None
    sync_scripts: list[Path]
    prepare_scripts: list[Path]
    build_scripts: list[Path]
    postinst_scripts: list[Path]
    finalize_scripts: list[Path]
    build_sources: list[TreeSpec]
    build_sources_ephemeral: bool
    environment: dict[str, str]
    environment_files: list[Path]
    with_tests: bool
    with_network: bool
    bootable: ConfigFeature
    bootloader: Bootloader
    bios_bootloader: BiosBootloader
    shim_bootloader: ShimBootloader
    unified_kernel_images: ConfigFeature
    initrds: list[Path]
    initrd_packages: list[str]
    microcode_host: bool
    kernel_command_line: list[str]
    kernel_modules_include: list[str]
    kernel_modules_exclude: list[str]
    kernel_modules_include_host: bool
    kernel_modules_initrd: bool
    kernel_modules_initrd_include: list[str]
    kernel_modules_initrd_exclude: list[str]
    kernel_modules_initrd_include_host: bool
    locale: str | None
    locale_messages: str | None
    keymap: str | None
    timezone: str | None
    hostname: str | None
    root_shell: str | None
    root_password: RootPassword | None
    autologin: bool
    make_initrd: bool
    ssh: bool
    selinux_relabel: ConfigFeature

    # [Validation]
    secure_boot: bool
    secure_boot_auto_enroll: bool
    secure_boot_key: Path | None
    secure_boot_key_source: KeySource
    secure_boot_certificate: Path | None
    secure_boot_sign_tool: SecureBootSignTool
    verity_key: Path | None
    verity_key_source: KeySource
    verity_certificate: Path | None
    sign_expected_pcr: ConfigFeature
    passphrase: Path | None
    checksum: bool
    sign: bool
    key: str | None

    # [Host]
    incremental: bool
    install_cache: bool
    nspawn_settings: Path | None
    extra_search_paths: list[Path]
    qemu_gui: bool
    qemu_smp: str
    qemu_mem: str
    qemu_kvm: ConfigFeature
    qemu_vsock: ConfigFeature
    qemu_vsock_connection_id: int
    qemu_swtpm: ConfigFeature
    qemu_cdrom: bool
    qemu_firmware: QemuFirmware
    qemu_firmware_variables: Path | Literal["custom", "microsoft"] | None
    qemu_kernel: Path | None
    qemu_drives: list[QemuDrive]
    qemu_args: list[str]
    ephemeral: bool
    credentials: dict[str, str]
    kernel_command_line_extra: list[str]
    acl: bool
    tools_tree: Path | Literal["default"] | None
    tools_tree_distribution: Distribution | None
    tools_tree_release: str | None
    tools_tree_mirror: str | None
    tools_tree_repositories: list[str]
    tools_tree_package_manager_trees: list[TreeSpec]
    tools_tree_packages: list[str]
    runtime_trees: list[TreeSpec]
    runtime_size: int | None
    runtime_scratch: ConfigFeature
    runtime_network: Network
    ssh_key: Path | None
    ssh_certificate: Path | None

    # Names of the settings whose value differs from what the built-in default would give.
    non_default: frozenset[str] = frozenset()

    def output_dir_or_cwd(self) -> Path:
        return self.output_directory or self.directory

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"Config({body})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # lists inside: not hashable, as a generated eq would make it
