"""The [Distribution] rows of the settings table, in the order of the man page."""

from __future__ import annotations

from imagebuild.config.enums import Architecture, CacheOnly, Distribution
from imagebuild.config.setting import Effect, Files, Kind, Setting
from imagebuild.config.table.defaults import default_architecture, default_distribution, default_release
from imagebuild.config.table.parsers import enum_values, match_enum, match_equal
from imagebuild.config.table.shorthands import boolean, choice, string, strings, trees
from imagebuild.config.values import parse_enum

ROWS: tuple[Setting, ...] = (
    choice("Distribution", "Distribution", Distribution, short="-d", specifier="d",
           default_factory=default_distribution, default_doc="the host's distribution, or custom",
           match=match_enum(Distribution),
           effect=Effect.INSTALL,
           help="The distribution to install in the image."),
    string("Release", "Distribution", short="-r", specifier="r", default_factory=default_release,
           default_doc="the host's release if the host runs the same distribution, "
                       "else the distribution's default (debian: testing)",
           match=match_equal, metavar="RELEASE",
           effect=Effect.INSTALL,
           help="The release of the distribution to install."),
    choice("Architecture", "Distribution", Architecture, specifier="a",
           default_factory=default_architecture, default_doc="the host's architecture",
           match=match_enum(Architecture),
           effect=Effect.INSTALL,
           help="The architecture to build the image for."),
    string("Mirror", "Distribution", short="-m", metavar="URL", unset_text="default",
           effect=Effect.INSTALL,
           help="The mirror to download distribution packages from."),
    string("LocalMirror", "Distribution", metavar="URL", label="Local Mirror (build)",
           effect=Effect.INSTALL,
           help="A local, flat mirror used for the build only; Mirror= is configured in the image."),
    boolean("RepositoryKeyCheck", "Distribution", default=True, label="Repo Signature/Key check",
            effect=Effect.INSTALL,
            help="Check signatures and keys of repositories."),
    strings("Repositories", "Distribution", metavar="REPOS",
            effect=Effect.INSTALL,
            help="Enable repositories (or components) that are disabled by default."),
    Setting("CacheOnly", "Distribution", Kind.SCALAR,
            lambda v, ctx: CacheOnly.always if v.lower() in ("1", "yes", "y", "true", "t", "on")
            else CacheOnly.none if v.lower() in ("0", "no", "n", "false", "f", "off")
            else parse_enum(CacheOnly, v),
            default=CacheOnly.none, flag="always", metavar="CACHEONLY", choices=enum_values(CacheOnly),
            label="Use Only Package Cache",
            effect=Effect.INSTALL,
            help="none: sync repository metadata and download packages; metadata: do not sync the "
                 "metadata; always: never contact the network. A boolean means always or none."),
    trees("PackageManagerTrees", "Distribution", long=("--package-manager-tree",),
          default_factory=lambda get: list(get("skeleton_trees")), default_doc="the SkeletonTrees=",
          effect=Effect.INSTALL, files=Files.CONTENT,
          help="Trees copied into the workspace to configure the package manager, not into the image."),
)
