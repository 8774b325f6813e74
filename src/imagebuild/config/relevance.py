"""Cheap questions about a resolved image that rows of the settings table ask: does this setting's value
change what this build does (Setting.matters), and which part of the build reads it (Setting.effect)?

They look at the configuration only, never at the files of the image, so they can run before any work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.config.enums import AUTO_BOOTABLE_FORMATS, BiosBootloader, Bootloader, ConfigFeature, OutputFormat
from imagebuild.config.setting import Effect

if TYPE_CHECKING:
    from imagebuild.config.model import Config


def gets_boot_loader(config: Config) -> bool:
    """Whether the build makes the image bootable when it has a kernel (as boot/esp.py decides).

    Format=uki is its own boot loader: no boot loader is installed for it.
    """
    if config.bootable == ConfigFeature.disabled or config.format == OutputFormat.uki:
        return False
    return config.bootable == ConfigFeature.enabled or config.format in AUTO_BOOTABLE_FORMATS


def gets_uefi_boot_loader(config: Config) -> bool:
    return gets_boot_loader(config) and config.bootloader != Bootloader.none


def gets_bios_boot_loader(config: Config) -> bool:
    """Whether BiosBootloader= puts a boot loader into the image: mkosi v22 installs grub for BIOS only into
    Format=disk images (a directory, tar or cpio has no disk whose first sectors it could write)."""
    return (config.bios_bootloader != BiosBootloader.none and config.format == OutputFormat.disk
            and gets_boot_loader(config))


def builds_initrds(config: Config) -> bool:
    """Whether the build puts initrds together: for boot entries and UKIs, or the UKI of Format=uki."""
    return gets_boot_loader(config) or config.format == OutputFormat.uki


def has_scripts(config: Config) -> bool:
    return any((config.sync_scripts, config.prepare_scripts, config.build_scripts, config.postinst_scripts,
                config.finalize_scripts))


def build_sources_effect(config: Config) -> Effect:
    # BuildSources= are mounted for every script; only prepare (and sync) scripts run before the part of
    # the build that Incremental= caches, so only they make changed sources invalidate that cache.
    return Effect.INSTALL if config.prepare_scripts or config.sync_scripts else Effect.IMAGE


def uses_default_tools_tree(config: Config) -> bool:
    return config.tools_tree == "default"


def includes_builtin_config(config: Config) -> bool:
    """Include=mkosi-initrd or mkosi-tools: mkosi's own configurations, which imagebuild does not ship."""
    return any(isinstance(p, str) for p in config.include)


def installs_selinux_policy(config: Config) -> bool:
    # What can be told without building: a policy package in Packages= (selinux-policy-default on Debian,
    # selinux-policy-targeted on Fedora, ...). A policy that comes from a tree or a script goes unnoticed.
    return any(p.startswith("selinux-policy") for p in config.packages)


def relabels_selinux(config: Config) -> bool:
    """Whether mkosi would relabel the image's files for SELinux."""
    if config.selinux_relabel == ConfigFeature.auto:
        return installs_selinux_policy(config)
    return config.selinux_relabel == ConfigFeature.enabled


def uses_vsock(config: Config) -> bool:
    return config.qemu_vsock == ConfigFeature.enabled
