"""The names of a build's artifacts in the output directory, as mkosi v22 names them.

Output= (default: ImageId= or "image", suffixed with _ImageVersion) is the prefix of every artifact;
the main artifact adds the format's extension and, for formats compressed as a whole, the
compression's (image_1.2.tar.zst). Manifests and checksums use the prefix: image_1.2.SHA256SUMS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.config import Config

EXTENSIONS = {
    "tar": ".tar", "cpio": ".cpio", "disk": ".raw", "esp": ".raw", "sysext": ".raw", "confext": ".raw",
    "portable": ".raw", "uki": ".efi",
}

# uki and esp compress inside (the initrd), not the file as a whole.
OUTER_COMPRESSION = frozenset({"tar", "cpio", "disk", "sysext", "confext", "portable"})


def compression_suffix(compression: str) -> str:
    """".zst" for zstd (the suffix zstd itself uses), ".xz", ".gz" ... for the others; "" for none."""
    if compression == "none":
        return ""
    return ".zst" if compression == "zstd" else f".{compression}"


def uncompressed_name(config: Config) -> str:
    return config.output + EXTENSIONS.get(str(config.format), "")


def is_compressed(config: Config) -> bool:
    return str(config.format) in OUTER_COMPRESSION and str(config.compress_output) != "none"


def artifact_name(config: Config) -> str:
    """The file name of the main artifact: Output + format extension + compression suffix."""
    name = uncompressed_name(config)
    if is_compressed(config):
        name += compression_suffix(str(config.compress_output))
    return name


def checksum_name(config: Config) -> str:
    return f"{config.output}.SHA256SUMS"


def signature_name(config: Config) -> str:
    return f"{config.output}.SHA256SUMS.gpg"


def manifest_name(config: Config) -> str:
    return f"{config.output}.manifest"


def changelog_name(config: Config) -> str:
    return f"{config.output}.changelog"
