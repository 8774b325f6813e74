"""What one setting is: the record every row of the settings table is made of."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagebuild.config.values import Ctx

if TYPE_CHECKING:
    from imagebuild.config.model import Config


class Kind(enum.Enum):
    SCALAR = "scalar"  # a later assignment replaces an earlier one
    LIST = "list"  # assignments append; an empty assignment empties the list
    DICT = "dict"  # assignments add keys; an empty assignment empties it


# Reads the current value of another setting (by attribute name) while a default is computed.
Getter = Callable[[str], Any]
Parser = Callable[[str, Ctx], Any]
Matcher = Callable[[str, Any, Ctx], bool]
# A question about one resolved image, e.g. "does this setting's value change what this build does?".
Predicate = Callable[["Config"], bool]


class Effect(enum.Enum):
    """What a setting's value changes. The image cache key covers INSTALL and IMAGE, Incremental='s key
    INSTALL only; the build refuses unsupported settings of every effect but RUNTIME."""

    INSTALL = "install"  # what the install stages make, the part Incremental= caches (so also the image)
    IMAGE = "image"  # the image or its artifacts (content, names, formats), after the cached part
    PROCESS = "process"  # only how and where the build works: outputs, caches, workspace, tool lookup
    RESOLVED = "resolved"  # read while the configuration is resolved; its effect shows in other settings
    RUNTIME = "runtime"  # how images are run (boot, shell, qemu, ssh), not how they are built

    @property
    def changes_image(self) -> bool:
        return self in (Effect.INSTALL, Effect.IMAGE)


class Files(enum.Enum):
    """What the files and directories that a setting's value names are to the build."""

    CONTENT = "content"  # read: their content is an input (hashed into the keys the setting's Effect is in)
    LOCATION = "location"  # where the build writes or looks for things: the content is no input, never hashed


@dataclass(frozen=True)
class NotYet:
    """A setting (or some of its values) the builder does not act on yet, and what to do instead."""

    # Why the build stops and what to use instead, shown after "not supported yet: Name=value: ".
    advice: str
    # Which builds need the missing part (Bootloader=grub of Bootloader=); None: every build the value
    # matters to.
    needed_by: Predicate | None = None


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
    # What the value changes: decides the cache keys and the support checks that include the setting;
    # a function when that depends on the image (BuildSources= feed the install only via prepare scripts).
    effect: Effect | Callable[[Config], Effect] = Effect.IMAGE
    # None: the value names no files; otherwise what the files it names are (every path-valued setting
    # says which, tests/unit/config/test_table.py checks).
    files: Files | None = None
    # Whether this build's value changes what the build does, e.g. Bootloader= only for images that get a
    # boot loader. None: always (for refusals: whenever the value is not the default). A value that does
    # not matter is left out of the cache keys and never refused.
    matters: Predicate | None = None
    # Set when the builder does not act on the setting (or some values) yet: builds it matters to stop.
    not_yet: NotYet | None = None
    # Formats the value for the summary; None uses the generic formatting by type.
    show: Callable[[Any], str] | None = None
    # What the summary shows when the value is None (unset).
    unset_text: str = "none"
    compat_names: tuple[str, ...] = field(default=())
    # Not a setting of mkosi v22 but one of ours: parsed and documented like the others, but left out of
    # `summary` and its JSON, which read as v22's.
    extension: bool = False

    def __post_init__(self) -> None:
        if not self.attr:
            object.__setattr__(self, "attr", snake_case(self.name))
        if not self.long:
            object.__setattr__(self, "long", ("--" + self.attr.replace("_", "-"),))
        if not self.label:
            object.__setattr__(self, "label", _LABEL_BREAK.sub(" ", self.name))

    @property
    def supported(self) -> bool:
        """Whether the builder acts on every value of the setting."""
        return self.not_yet is None

    def effect_on(self, config: Config) -> Effect:
        return self.effect if isinstance(self.effect, Effect) else self.effect(config)

    def matters_to(self, config: Config) -> bool:
        return self.matters is None or self.matters(config)

    @property
    def options(self) -> tuple[str, ...]:
        return ((self.short,) if self.short else ()) + self.long
