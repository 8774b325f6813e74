"""What one setting is: the record every row of the settings table is made of."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imagebuild.config.values import Ctx


class Kind(enum.Enum):
    SCALAR = "scalar"  # a later assignment replaces an earlier one
    LIST = "list"  # assignments append; an empty assignment empties the list
    DICT = "dict"  # assignments add keys; an empty assignment empties it


# Reads the current value of another setting (by attribute name) while a default is computed.
Getter = Callable[[str], Any]
Parser = Callable[[str, Ctx], Any]
Matcher = Callable[[str, Any, Ctx], bool]


_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_LABEL_BREAK = re.compile(r"(?<=[a-z])(?=[A-Z])")


def snake_case(name: str) -> str:
    return _WORD_START.sub("_", name).lower()


@dataclass(frozen=True)
class Setting:
    name: str
    section: str
    kind: Kind
    # Parses one item of a list, one NAME=VALUE of a dict, or the whole value of a scalar.
    parse: Parser
    attr: str = ""
    default: Any = None
    default_factory: Callable[[Getter], Any] | None = None
    # How the default is described in the documentation when it is computed.
    default_doc: str = ""
    long: tuple[str, ...] = ()
    short: str = ""
    # The value an option means when given without one (--ssh means --ssh=yes); None: a value is needed.
    flag: str | None = None
    metavar: str = "VALUE"
    specifier: str = ""
    match: Matcher | None = None
    # Files or directories next to mkosi.conf that configure the setting when they exist.
    paths: tuple[str, ...] = ()
    # True: such a path only sets the default (an explicit value wins); False: it is assigned like a value.
    path_sets_default: bool = True
    path_read_text: bool = False
    path_secret: bool = False
    delimiter: str = ","
    unescape: bool = False
    # Whether an empty assignment empties the list (Include= keeps what it has).
    reset: bool = True
    # Combines an old and a new scalar value (MinimumVersion= keeps the highest).
    merge: Callable[[Any, Any], Any] | None = None
    label: str = ""
    help: str = ""
    choices: tuple[str, ...] = ()
    # Other sections the setting may appear in without a warning.
    also_in: tuple[str, ...] = ()
    # Whether the builder acts on the setting; others are parsed and shown, and a build needing them stops.
    supported: bool = False
    # Formats the value for the summary; None uses the generic formatting by type.
    show: Callable[[Any], str] | None = None
    # What the summary shows when the value is None (unset).
    unset_text: str = "none"
    compat_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.attr:
            object.__setattr__(self, "attr", snake_case(self.name))
        if not self.long:
            object.__setattr__(self, "long", ("--" + self.attr.replace("_", "-"),))
        if not self.label:
            object.__setattr__(self, "label", _LABEL_BREAK.sub(" ", self.name))

    @property
    def options(self) -> tuple[str, ...]:
        return ((self.short,) if self.short else ()) + self.long
