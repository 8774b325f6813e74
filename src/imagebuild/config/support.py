"""Which settings of a configuration the builder would have to act on, for "not supported yet" errors."""

from __future__ import annotations

from collections.abc import Collection

from imagebuild.config.model import Config
from imagebuild.config.settings import SETTINGS


def changed_settings(config: Config) -> list[str]:
    """Names of the settings whose value differs from their built-in default, in table order."""
    return [s.name for s in SETTINGS if s.name in config.non_default]


def unsupported_settings(config: Config, supported: Collection[str] | None = None) -> list[str]:
    """Changed settings the builder does not act on.

    supported names the settings the builder handles; None uses the table's `supported` flags.
    Include= of mkosi's built-in configurations (mkosi-initrd, mkosi-tools) is reported as Include.
    """
    if supported is None:
        supported = {s.name for s in SETTINGS if s.supported}
    out = [name for name in changed_settings(config) if name not in supported]
    if "Include" not in out and any(isinstance(p, str) for p in config.include):
        out.insert(0, "Include")
    return out
