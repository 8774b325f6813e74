"""Defaults computed from other settings (Setting.default_factory)."""

from __future__ import annotations

from imagebuild.config import host
from imagebuild.config.enums import Architecture, Compression, Distribution, OutputFormat
from imagebuild.config.errors import ConfigError, ValueProblem
from imagebuild.config.setting import Getter
from imagebuild.config.table.parsers import enum_values
from imagebuild.config.values import parse_nonnegative_int


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
