"""Which settings of a configuration the builder would have to act on, for "not supported yet" errors.

A setting is refused only when its row says the builder does not act on it (not_yet) and its value matters
to what is being done: never for RUNTIME settings during a build, never for values that resolve to nothing
(SELinuxRelabel=no, a boot loader for an image that gets none).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from imagebuild.config.enums import ConfigFeature
from imagebuild.config.model import Config
from imagebuild.config.setting import Effect, Setting
from imagebuild.config.settings import SETTINGS


def changed_settings(config: Config) -> list[str]:
    """Names of the settings whose value differs from their built-in default, in table order."""
    return [s.name for s in SETTINGS if s.name in config.non_default]


def value_matters(setting: Setting, config: Config) -> bool:
    """Whether the setting's value changes what is done with this config (the row's matters=, or else
    whether the value is not the default)."""
    if setting.matters is not None:
        return setting.matters(config)
    return setting.name in config.non_default


def _used_by(setting: Setting, config: Config, effects: Collection[Effect] | None) -> bool:
    return effects is None or setting.effect_on(config) in effects


# What a build reads; RUNTIME settings are for the verbs that run images (launch/qemu.py checks those).
BUILD_EFFECTS = frozenset(Effect) - {Effect.RUNTIME}


@dataclass(frozen=True)
class Refusal:
    setting: Setting
    value: str
    advice: str

    def __str__(self) -> str:
        return f"not supported yet: {self.setting.name}={self.value}: {self.advice}"


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, ConfigFeature):
        return {ConfigFeature.enabled: "yes", ConfigFeature.disabled: "no"}.get(value, str(value))
    if isinstance(value, list | tuple):
        return ",".join(_value_text(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def refusals(config: Config, effects: Collection[Effect] | None = BUILD_EFFECTS) -> list[Refusal]:
    """The settings of config that the builder would need but does not act on yet, with what to do instead.

    effects limits the check to settings with these effects (None: all of them).
    """
    out = []
    for s in SETTINGS:
        missing = s.not_yet
        if missing is None or not _used_by(s, config, effects) or not value_matters(s, config):
            continue
        if missing.needed_by is not None and not missing.needed_by(config):
            continue
        out.append(Refusal(s, _value_text(getattr(config, s.attr)), missing.advice))
    return out


def unsupported_settings(config: Config, supported: Collection[str] | None = None,
                         effects: Collection[Effect] | None = BUILD_EFFECTS) -> list[str]:
    """Names of the settings refused for config, in table order.

    supported names the settings the builder handles instead of the table's not_yet (for tests); with it,
    every other changed setting whose value matters is reported.
    """
    if supported is None:
        return [r.setting.name for r in refusals(config, effects)]
    return [name for s in SETTINGS
            if (name := s.name) not in supported and name in config.non_default
            and _used_by(s, config, effects) and s.matters_to(config)]
