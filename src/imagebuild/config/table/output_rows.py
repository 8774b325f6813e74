"""The [Output] rows of the settings table, in the order of the man page."""

from __future__ import annotations

from imagebuild.config.enums import Compression, ManifestFormat, OutputFormat
from imagebuild.config.setting import Effect, Files, Kind, Setting
from imagebuild.config.table.defaults import default_compression, default_output
from imagebuild.config.table.parsers import enum_parser, enum_values, match_enum, match_glob, match_version
from imagebuild.config.table.shorthands import boolean, choice, feature, path, paths, string
from imagebuild.config.values import (
    parse_compression,
    parse_filename,
    parse_nonnegative_int,
    parse_sector_size,
    parse_seed,
)

ROWS: tuple[Setting, ...] = (
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
            help="Use btrfs subvolumes for directory outputs."),
    Setting("Seed", "Output", Kind.SCALAR, parse_seed, metavar="UUID", default_doc="random", unset_text="random",
            help="The seed systemd-repart uses (a UUID, or random)."),
)
