"""Shorthands for the common kinds of rows (booleans, features, paths, lists ...)."""

from __future__ import annotations

from typing import Any

from imagebuild.config.enums import ConfigFeature
from imagebuild.config.setting import Kind, Setting
from imagebuild.config.table.parsers import enum_parser, enum_values, path_parser, tree_parser
from imagebuild.config.values import parse_boolean, parse_feature, parse_string


def boolean(name: str, section: str, default: bool = False, **kw: Any) -> Setting:
    kw.setdefault("metavar", "BOOL")
    kw.setdefault("flag", "yes")
    return Setting(name, section, Kind.SCALAR, parse_boolean, default=default, **kw)


def feature(name: str, section: str, **kw: Any) -> Setting:
    kw.setdefault("metavar", "FEATURE")
    kw.setdefault("choices", ("auto", "yes", "no"))
    return Setting(name, section, Kind.SCALAR, parse_feature, default=ConfigFeature.auto, flag="yes", **kw)


def string(name: str, section: str, **kw: Any) -> Setting:
    return Setting(name, section, Kind.SCALAR, parse_string, **kw)


def choice(name: str, section: str, enum_type: type[Any], **kw: Any) -> Setting:
    kw.setdefault("metavar", name.upper())
    return Setting(name, section, Kind.SCALAR, enum_parser(enum_type), choices=enum_values(enum_type), **kw)


def path(name: str, section: str, *, required: bool = True, secret: bool = False,
         constants: tuple[str, ...] = (), **kw: Any) -> Setting:
    kw.setdefault("metavar", "PATH")
    return Setting(name, section, Kind.SCALAR,
                   path_parser(required=required, secret=secret, constants=constants), **kw)


def strings(name: str, section: str, **kw: Any) -> Setting:
    return Setting(name, section, Kind.LIST, parse_string, default=(), **kw)


def paths(name: str, section: str, *, required: bool = True, **kw: Any) -> Setting:
    kw.setdefault("metavar", "PATH")
    return Setting(name, section, Kind.LIST, path_parser(required=required), default=(), **kw)


def trees(name: str, section: str, *, absolute_target: bool = True, **kw: Any) -> Setting:
    kw.setdefault("metavar", "SOURCE[:TARGET]")
    return Setting(name, section, Kind.LIST, tree_parser(absolute_target=absolute_target), default=(), **kw)


SCRIPTS_HELP = "Comma-separated list of {} scripts (see the Scripts section of mkosi's man page)."
