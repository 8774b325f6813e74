"""The configuration language of mkosi v22: parsing, resolution, summary, JSON and documentation.

Typical use: ``args, images = load(sys.argv[1:])``; the last image is the one to boot.
"""

from __future__ import annotations

from typing import Any

from imagebuild.config.cmdline import parse_command_line
from imagebuild.config.enums import (
    Architecture,
    BiosBootloader,
    Bootloader,
    CacheOnly,
    Compression,
    ConfigFeature,
    Distribution,
    DocFormat,
    KeySourceType,
    ManifestFormat,
    Network,
    OutputFormat,
    QemuFirmware,
    SecureBootSignTool,
    ShimBootloader,
    Verb,
)
from imagebuild.config.errors import ConfigError
from imagebuild.config.load import load, load_directory, load_images
from imagebuild.config.model import Args, Config
from imagebuild.config.overrides import Overrides
from imagebuild.config.setting import Setting
from imagebuild.config.settings import SETTINGS
from imagebuild.config.support import changed_settings, unsupported_settings
from imagebuild.config.values import (
    VSOCK_CID_AUTO,
    VSOCK_CID_HASH,
    KeySource,
    QemuDrive,
    RootPassword,
    TreeSpec,
)


def format_summary(args: Args, images: list[Config]) -> str:
    from imagebuild.config.render import format_summary as impl

    return impl(args, images)


def to_json_dict(config: Config) -> dict[str, Any]:
    from imagebuild.config.render import to_json_dict as impl

    return impl(config)


def format_json(images: list[Config]) -> str:
    from imagebuild.config.render import format_json as impl

    return impl(images)


def format_documentation(doc_format: str) -> str:
    from imagebuild.config.docs import format_documentation as impl

    return impl(doc_format)


def format_help() -> str:
    from imagebuild.config.docs import format_help as impl

    return impl()


__all__ = [
    "SETTINGS",
    "VSOCK_CID_AUTO",
    "VSOCK_CID_HASH",
    "Architecture",
    "Args",
    "BiosBootloader",
    "Bootloader",
    "CacheOnly",
    "Compression",
    "Config",
    "ConfigError",
    "ConfigFeature",
    "Distribution",
    "DocFormat",
    "KeySource",
    "KeySourceType",
    "ManifestFormat",
    "Network",
    "OutputFormat",
    "Overrides",
    "QemuDrive",
    "QemuFirmware",
    "RootPassword",
    "SecureBootSignTool",
    "Setting",
    "ShimBootloader",
    "TreeSpec",
    "Verb",
    "changed_settings",
    "format_documentation",
    "format_help",
    "format_json",
    "format_summary",
    "load",
    "load_directory",
    "load_images",
    "parse_command_line",
    "to_json_dict",
    "unsupported_settings",
]
