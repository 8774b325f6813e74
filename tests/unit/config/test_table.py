"""The settings table: complete with respect to the man page, consistent with Config, CLI and specifiers."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from imagebuild.config import SETTINGS, Config
from imagebuild.config.setting import Effect, Files
from imagebuild.config.settings import BY_NAME, BY_OPTION, BY_SPECIFIER, MATCH_NAMES, SECTIONS, SUPPORTED

# The settings of mkosi v22's man page, section by section.
MAN_PAGE = {
    "Config": "Profile Include InitrdInclude Images Dependencies MinimumVersion",
    "Distribution": "Distribution Release Architecture Mirror LocalMirror RepositoryKeyCheck Repositories "
                    "CacheOnly PackageManagerTrees",
    "Output": "Format ManifestFormat Output CompressOutput CompressLevel OutputDirectory WorkspaceDirectory "
              "CacheDirectory PackageCacheDirectory BuildDirectory ImageVersion ImageId SplitArtifacts "
              "RepartDirectories SectorSize RepartOffline Overlay UseSubvolumes Seed",
    "Content": "SourceDateEpoch Packages BuildPackages PackageDirectories WithRecommends WithDocs BaseTrees "
               "SkeletonTrees ExtraTrees RemovePackages RemoveFiles CleanPackageMetadata SyncScripts "
               "PrepareScripts BuildScripts PostInstallationScripts FinalizeScripts BuildSources "
               "BuildSourcesEphemeral Environment EnvironmentFiles WithTests WithNetwork Bootable Bootloader "
               "BiosBootloader ShimBootloader UnifiedKernelImages Initrds InitrdPackages MicrocodeHost "
               "KernelCommandLine KernelModulesInclude KernelModulesExclude KernelModulesIncludeHost "
               "KernelModulesInitrd KernelModulesInitrdInclude KernelModulesInitrdExclude "
               "KernelModulesInitrdIncludeHost Locale LocaleMessages Keymap Timezone Hostname RootShell "
               "RootPassword Autologin MakeInitrd Ssh SELinuxRelabel",
    "Validation": "SecureBoot SecureBootAutoEnroll SecureBootKey SecureBootKeySource SecureBootCertificate "
                  "SecureBootSignTool VerityKey VerityKeySource VerityCertificate SignExpectedPcr Passphrase "
                  "Checksum Sign Key",
    "Host": "Incremental NSpawnSettings ExtraSearchPaths QemuGui QemuSmp QemuMem QemuKvm QemuVsock "
            "QemuVsockConnectionId QemuSwtpm QemuCdrom QemuFirmware QemuFirmwareVariables QemuKernel QemuDrives "
            "QemuArgs Ephemeral Credentials KernelCommandLineExtra Acl ToolsTree ToolsTreeDistribution "
            "ToolsTreeRelease ToolsTreeMirror ToolsTreeRepositories ToolsTreePackageManagerTrees "
            "ToolsTreePackages RuntimeTrees RuntimeSize RuntimeScratch RuntimeNetwork SshKey SshCertificate",
}

# Options as the man page documents them (long and short).
DOCUMENTED_OPTIONS = {
    "Distribution": ("--distribution", "-d"),
    "Release": ("--release", "-r"),
    "Mirror": ("--mirror", "-m"),
    "Format": ("--format", "-t"),
    "Output": ("--output", "-o"),
    "OutputDirectory": ("--output-dir", "-O"),
    "Packages": ("--package", "-p"),
    "WithTests": ("--without-tests", "-T"),
    "Incremental": ("--incremental", "-i"),
    "NSpawnSettings": ("--settings",),
    "Images": ("--image",),
    "Dependencies": ("--dependency",),
    "PostInstallationScripts": ("--postinst-script",),
    "EnvironmentFiles": ("--env-file",),
    "QemuVsockConnectionId": ("--qemu-vsock-cid",),
    "Credentials": ("--credential",),
    "Initrds": ("--initrd",),
    "RepartDirectories": ("--repart-dir",),
    "WorkspaceDirectory": ("--workspace-dir",),
    "CacheDirectory": ("--cache-dir",),
    "PackageCacheDirectory": ("--package-cache-dir",),
    "BuildDirectory": ("--build-dir",),
    "ToolsTreeRepositories": ("--tools-tree-repository",),
    "ToolsTreePackages": ("--tools-tree-packages",),
    "RuntimeTrees": ("--runtime-tree",),
    "ExtraSearchPaths": ("--extra-search-path",),
    "QemuDrives": ("--qemu-drive",),
}


def test_every_man_page_setting_is_in_its_section() -> None:
    # Our own settings (extension=True) are not on v22's man page.
    v22 = [s for s in SETTINGS if not s.extension]
    table = {section: [s.name for s in v22 if s.section == section] for section in SECTIONS}
    for section, names in MAN_PAGE.items():
        assert sorted(table[section]) == sorted(names.split()), section
    assert len(v22) == sum(len(n.split()) for n in MAN_PAGE.values())
    assert [s.name for s in SETTINGS if s.extension] == ["InstallCache"]


@pytest.mark.parametrize(("name", "options"), sorted(DOCUMENTED_OPTIONS.items()))
def test_documented_options(name: str, options: tuple[str, ...]) -> None:
    for option in options:
        assert BY_OPTION[option].name == name


def test_config_has_one_field_per_setting() -> None:
    fields = [f.name for f in dataclasses.fields(Config)]
    assert fields[:2] == ["directory", "image"]
    assert fields[2:-1] == [s.attr for s in SETTINGS]
    assert fields[-1] == "non_default"


def test_contract_field_names() -> None:
    names = {f.name for f in dataclasses.fields(Config)}
    for attr in ("postinst_scripts", "cache_only", "format", "output_directory", "nspawn_settings",
                 "extra_trees", "skeleton_trees", "package_manager_trees", "runtime_trees", "build_sources",
                 "tools_tree", "qemu_mem", "qemu_smp", "root_password", "kernel_command_line_extra"):
        assert attr in names


def test_specifiers() -> None:
    assert {k: v.name for k, v in BY_SPECIFIER.items()} == {
        "d": "Distribution", "r": "Release", "a": "Architecture", "t": "Format", "o": "Output",
        "O": "OutputDirectory", "i": "ImageId", "v": "ImageVersion",
    }


def test_match_conditions_of_the_man_page_table() -> None:
    assert sorted(MATCH_NAMES) == sorted(
        ["Profile", "Distribution", "Release", "Architecture", "PathExists", "ImageId", "ImageVersion",
         "Bootable", "Format", "SystemdVersion", "BuildSources", "HostArchitecture"]
    )


def test_options_are_unique_and_names_resolve() -> None:
    options = [o for s in SETTINGS for o in s.options]
    assert len(options) == len(set(options))
    for s in SETTINGS:
        assert BY_NAME[s.name] is s
        assert s.help and s.label


def test_supported_names_are_settings() -> None:
    assert set(BY_NAME) >= SUPPORTED
    assert {s.name for s in SETTINGS if s.supported} == SUPPORTED


# ---- the facts the cache keys and the support check are derived from ------------------------------------


def _names_host_paths(tp: object) -> bool:
    """Whether values of the type are or contain paths (Path, or records such as TreeSpec holding one)."""
    if tp is Path:
        return True
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return any(_names_host_paths(t) for t in typing.get_type_hints(tp).values())
    return any(_names_host_paths(arg) for arg in typing.get_args(tp) if not isinstance(arg, str))


CONFIG_TYPES = typing.get_type_hints(Config)
PATH_VALUED = sorted(s.name for s in SETTINGS if _names_host_paths(CONFIG_TYPES[s.attr]))


def test_the_walk_finds_path_valued_settings() -> None:
    # The types that hold paths, as the Config record types them: Path, TreeSpec, QemuDrive.
    assert {"OutputDirectory", "ExtraTrees", "BuildSources", "QemuDrives", "Include", "SecureBootKey",
            "ToolsTree", "QemuFirmwareVariables"} <= set(PATH_VALUED)
    assert "Credentials" not in PATH_VALUED and "ImageVersion" not in PATH_VALUED


@pytest.mark.parametrize("name", PATH_VALUED)
def test_every_path_valued_setting_says_what_its_files_are(name: str) -> None:
    # Content inputs are hashed into the cache keys; locations (output, caches) must say they are not.
    assert BY_NAME[name].files is not None, f"{name}=: set files=Files.CONTENT or files=Files.LOCATION"


def test_only_path_valued_settings_name_files() -> None:
    assert sorted(s.name for s in SETTINGS if s.files is not None) == PATH_VALUED


def test_places_the_build_writes_into_are_locations() -> None:
    for name in ("OutputDirectory", "CacheDirectory", "WorkspaceDirectory", "PackageCacheDirectory",
                 "BuildDirectory"):
        assert BY_NAME[name].files is Files.LOCATION
        assert BY_NAME[name].effect is Effect.PROCESS


def test_runtime_settings_are_not_in_the_image_key() -> None:
    for s in SETTINGS:
        if s.name.startswith("Qemu") or s.name.startswith("Runtime") or s.name in ("Credentials", "SshKey"):
            assert s.effect is Effect.RUNTIME, s.name


def test_what_is_not_supported_says_what_to_do_instead() -> None:
    for s in SETTINGS:
        if s.not_yet is not None:
            assert s.not_yet.advice and not s.not_yet.advice.endswith("."), s.name
            assert s.name not in SUPPORTED
