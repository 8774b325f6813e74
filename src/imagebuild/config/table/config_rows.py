"""The [Config] rows of the settings table, in the order of the man page."""

from __future__ import annotations

from imagebuild.config import relevance
from imagebuild.config.setting import Effect, Files, Kind, NotYet, Setting
from imagebuild.config.table.parsers import highest_version, match_equal, parse_minimum_version, path_parser
from imagebuild.config.table.shorthands import strings
from imagebuild.config.values import parse_profile

# Include=mkosi-initrd / mkosi-tools: imagebuild has no copies of mkosi's own configurations.
NOT_YET_BUILTIN_INCLUDE = NotYet(
    "mkosi's built-in configurations are not part of imagebuild; it builds the default initrd and tools tree "
    "itself: drop the Include= (or include a configuration file of your own)",
    needed_by=relevance.includes_builtin_config,
)

ROWS: tuple[Setting, ...] = (
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
)
