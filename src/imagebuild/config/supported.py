"""The settings the builder acts on, by area.

A build that changes any other setting is refused with "not supported yet: X=" before any work is done
(build/support.py). Each area's set is extended by the code that implements it; keep one set per area so
that work on different parts of the builder touches different lines.
"""

from __future__ import annotations

# [Config]: resolved by the config layer, nothing left for the builder.
CONFIG = frozenset({"Profile", "Include", "Images", "Dependencies", "MinimumVersion"})

# distributions/ and installers/: what gets installed from where.
DISTRIBUTION = frozenset({
    "Distribution", "Release", "Architecture", "Mirror", "LocalMirror", "Repositories", "RepositoryKeyCheck",
    "Packages", "WithRecommends", "WithDocs",
    "CacheOnly",
    "PackageManagerTrees",
    "PackageDirectories",
})

# build/ content stages: trees, first-boot settings, system setup, cleanup.
CONTENT = frozenset({
    "Hostname", "ExtraTrees", "SkeletonTrees", "BaseTrees",
    "Ssh", "Autologin", "MakeInitrd", "Locale", "LocaleMessages", "Keymap", "Timezone", "RootShell",
    "RootPassword", "RemovePackages", "RemoveFiles", "CleanPackageMetadata",
})

# build/scripts and the script sandbox.
SCRIPTS = frozenset({
    "BuildSources", "Environment", "PrepareScripts", "BuildScripts", "PostInstallationScripts",
    "FinalizeScripts", "BuildPackages", "BuildSourcesEphemeral", "EnvironmentFiles", "WithTests",
    "WithNetwork",
})

# outputs/ (non-disk formats), naming, manifests, checksums, signatures.
OUTPUT = frozenset({
    "Format", "Output", "OutputDirectory", "ImageId", "ImageVersion", "SourceDateEpoch", "CompressOutput",
    "CompressLevel", "ManifestFormat", "Checksum", "Sign", "Key",
})

# Caches and working directories.
CACHES = frozenset({
    "PackageCacheDirectory", "CacheDirectory", "WorkspaceDirectory", "BuildDirectory", "Incremental",
})

# The tools tree.
TOOLS = frozenset({
    "ToolsTree", "ToolsTreeDistribution", "ToolsTreeRelease", "ToolsTreeMirror", "ToolsTreeRepositories",
    "ToolsTreePackages",
})

# Format=disk and the other partitioned formats: systemd-repart, verity, LUKS.
DISK = frozenset({
    "RepartDirectories", "SectorSize", "RepartOffline", "Seed", "SplitArtifacts", "Passphrase", "VerityKey",
    "VerityKeySource", "VerityCertificate", "Overlay",
})

# The boot chain: kernels, initrds, systemd-boot, UKIs, Secure Boot.
BOOT = frozenset({
    "Bootable", "Bootloader", "UnifiedKernelImages", "Initrds", "InitrdPackages", "InitrdInclude",
    "KernelCommandLine", "KernelModulesInclude", "KernelModulesExclude", "KernelModulesIncludeHost",
    "KernelModulesInitrd", "KernelModulesInitrdInclude", "KernelModulesInitrdExclude",
    "KernelModulesInitrdIncludeHost", "SecureBoot", "SecureBootAutoEnroll", "SecureBootKey",
    "SecureBootKeySource", "SecureBootCertificate", "SecureBootSignTool",
})

# Used only when running images (boot, shell, qemu, ssh ...), not by the build.
RUNTIME = frozenset({
    "RuntimeTrees", "RuntimeSize", "RuntimeScratch", "RuntimeNetwork", "Ephemeral", "Credentials",
    "KernelCommandLineExtra", "NSpawnSettings", "SshKey", "SshCertificate", "Acl", "QemuSmp",
    # QemuVsock= picks the SSH transport of the qemu verb and runner (vsock, else virtio-serial).
    # Not supported yet: QemuVsockConnectionId= (a free CID is always picked at random), QemuGui= (no
    # display, and the tools tree's qemu has no GUI modules).
    "QemuVsock", "QemuMem", "QemuKvm", "QemuSwtpm", "QemuCdrom", "QemuFirmware",
    "QemuFirmwareVariables", "QemuKernel", "QemuDrives", "QemuArgs",
})

SUPPORTED = CONFIG | DISTRIBUTION | CONTENT | SCRIPTS | OUTPUT | CACHES | TOOLS | DISK | BOOT | RUNTIME
