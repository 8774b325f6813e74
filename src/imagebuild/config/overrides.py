"""Values given on the command line (or by the pytest plugin); they win over the configuration files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagebuild.config import assign
from imagebuild.config.errors import ConfigError
from imagebuild.config.setting import Kind, Setting
from imagebuild.config.settings import BY_NAME
from imagebuild.config.values import Ctx


@dataclass
class CliValue:
    """The accumulated command-line value of one setting.

    Scalars: value is the parsed value, or None when the option was given empty (the default then
    applies, whatever the files say). Lists/dicts: value holds the items; reset says an empty
    assignment happened, so the files' items and the default are dropped.
    """

    value: Any
    reset: bool = False


@dataclass
class Overrides:
    """Command-line settings by Config attribute name, in the order given."""

    values: dict[str, CliValue] = field(default_factory=dict)

    def add(self, setting: Setting, raw: str, ctx: Ctx) -> None:
        current = self.values.get(setting.attr)
        if setting.kind is Kind.SCALAR:
            old = current.value if current else None
            self.values[setting.attr] = CliValue(assign.apply(setting, raw, ctx, old))
            return
        if not raw.strip() and setting.reset:
            self.values[setting.attr] = CliValue([] if setting.kind is Kind.LIST else {}, reset=True)
            return
        old = current.value if current else None
        new = assign.apply(setting, raw, ctx, old)
        self.values[setting.attr] = CliValue(new, reset=current.reset if current else False)

    def get(self, attr: str) -> CliValue | None:
        return self.values.get(attr)

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, str | Sequence[str]], base: Path | None = None
    ) -> Overrides:
        """Overrides from {"Distribution": "fedora", "Packages": ["vim", "git"]}, as if given as options.

        Relative paths are taken from base (default: the current directory).
        """
        overrides = cls()
        ctx = Ctx(base or Path.cwd(), "overrides")
        for name, value in settings.items():
            setting = BY_NAME.get(name)
            if setting is None:
                raise ConfigError(f"overrides: unknown setting {name!r}")
            for raw in [value] if isinstance(value, str) else value:
                overrides.add(setting, raw, Ctx(ctx.base, f"overrides: {setting.name}"))
        return overrides
