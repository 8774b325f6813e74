"""How the rows parse values and match [Match] conditions."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imagebuild.config.errors import ValueProblem
from imagebuild.config.setting import Parser
from imagebuild.config.values import (
    Ctx,
    QemuDrive,
    TreeSpec,
    parse_bytes,
    parse_enum,
    parse_feature,
    parse_tree,
    path_exists,
    resolve_path,
)
from imagebuild.config.versions import compare_versions, parse_version_condition, version_matches


def enum_parser(enum_type: type[Any]) -> Parser:
    def parse(value: str, ctx: Ctx) -> Any:
        return parse_enum(enum_type, value)

    return parse


def path_parser(*, required: bool = True, secret: bool = False, constants: tuple[str, ...] = ()) -> Parser:
    def parse(value: str, ctx: Ctx) -> Any:
        if value in constants:
            return value
        return resolve_path(value, ctx, required=required, secret=secret)

    return parse


def key_parser(value: str, ctx: Ctx) -> Path:
    # A private key: a file whose permissions matter, or (mkosi allows it) a name an engine understands.
    path = resolve_path(value, ctx, required=False, secret=True)
    return path if path_exists(path) else Path(value)


def tree_parser(*, absolute_target: bool = True) -> Parser:
    def parse(value: str, ctx: Ctx) -> TreeSpec:
        return parse_tree(value, ctx, absolute_target=absolute_target)

    return parse


def parse_drive(value: str, ctx: Ctx) -> QemuDrive:
    parts = value.split(":", maxsplit=3)
    accepted = "ID:SIZE[:DIRECTORY[:OPTIONS]], e.g. btrfs:10G"
    if not parts[0]:
        raise ValueProblem(f"the drive {value!r} has no ID", accepted)
    if len(parts) < 2:
        raise ValueProblem(f"the drive {value!r} has no size", accepted)
    if "/" in parts[0]:
        raise ValueProblem(f"the drive ID {parts[0]!r} contains '/'", accepted)
    directory = resolve_path(parts[2], ctx) if len(parts) > 2 and parts[2] else None
    options = parts[3] if len(parts) > 3 and parts[3] else None
    return QemuDrive(parts[0], parse_bytes(parts[1]), directory, options)


def parse_minimum_version(value: str, ctx: Ctx) -> str:
    if not any(c.isdigit() for c in value):
        raise ValueProblem(f"{value!r} is not a version", "a version such as 22")
    return value


def highest_version(old: str | None, new: str) -> str:
    return new if old is None or compare_versions(new, old) > 0 else old


def enum_values(enum_type: type[Any]) -> tuple[str, ...]:
    return tuple(m.value for m in enum_type)


# Matchers also see conditions on unset settings (value None, never a match), so that a malformed
# condition is an error whatever the configuration holds.


def match_equal(condition: str, value: Any, ctx: Ctx) -> bool:
    if condition[:1] in ("<", ">", "="):
        # mkosi v22 compares only versions (ImageVersion=, SystemdVersion=) with operators.
        raise ValueProblem("[Match] compares this setting for equality only; drop the comparison operator "
                           "(only ImageVersion= and SystemdVersion= take <, <=, >, >=, ==, !=)")
    return value is not None and condition == str(value)


def match_enum(enum_type: type[Any]) -> Callable[[str, Any, Ctx], bool]:
    def match(condition: str, value: Any, ctx: Ctx) -> bool:
        wanted = parse_enum(enum_type, condition)
        return value is not None and bool(wanted == value)

    return match


def match_glob(condition: str, value: Any, ctx: Ctx) -> bool:
    return value is not None and fnmatch.fnmatchcase(str(value), condition)


def match_version(condition: str, value: Any, ctx: Ctx) -> bool:
    parse_version_condition(condition)
    return value is not None and version_matches(condition, str(value))


def match_feature(condition: str, value: Any, ctx: Ctx) -> bool:
    wanted = parse_feature(condition)
    return value is not None and bool(wanted == value)


def match_build_sources(condition: str, value: Any, ctx: Ctx) -> bool:
    wanted = condition.strip("/")
    return any(t.target is not None and str(t.target).strip("/") == wanted for t in value or ())
