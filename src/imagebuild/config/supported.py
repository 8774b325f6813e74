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
})

# build/ content stages: trees, first-boot settings, system setup, cleanup.
CONTENT = frozenset({"Hostname", "ExtraTrees", "SkeletonTrees"})

# build/scripts and the script sandbox.
SCRIPTS = frozenset({"BuildSources", "Environment"})

# outputs/ (non-disk formats), naming, manifests, checksums, signatures.
OUTPUT = frozenset({"Format", "Output", "OutputDirectory", "ImageId", "ImageVersion", "SourceDateEpoch"})

# Caches and working directories.
CACHES = frozenset({"PackageCacheDirectory", "CacheDirectory", "WorkspaceDirectory", "BuildDirectory"})

# The tools tree.
TOOLS = frozenset({"ToolsTree"})

# Format=disk and the other partitioned formats: systemd-repart, verity, LUKS.
DISK = frozenset(set[str]())

# The boot chain: kernels, initrds, systemd-boot, UKIs, Secure Boot.
BOOT = frozenset(set[str]())

# Used only when running images (boot, shell, qemu, ssh ...), not by the build.
RUNTIME = frozenset({
    "RuntimeTrees", "RuntimeSize", "RuntimeScratch", "RuntimeNetwork", "Ephemeral", "Credentials",
    "KernelCommandLineExtra", "NSpawnSettings", "SshKey", "SshCertificate", "Acl", "QemuGui", "QemuSmp",
    "QemuMem", "QemuKvm", "QemuVsock", "QemuVsockConnectionId", "QemuSwtpm", "QemuCdrom", "QemuFirmware",
    "QemuFirmwareVariables", "QemuKernel", "QemuDrives", "QemuArgs",
})

SUPPORTED = CONFIG | DISTRIBUTION | CONTENT | SCRIPTS | OUTPUT | CACHES | TOOLS | DISK | BOOT | RUNTIME
