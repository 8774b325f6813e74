"""Discovery and resolution: reads a configuration tree in mkosi's order and resolves every image.

The order for a configuration directory: its mkosi.conf [Match] decides whether the directory counts at
all; then mkosi.local.conf, the default paths (mkosi.extra/, mkosi.rootpw, ...), mkosi.conf, the profile
(top level only) and mkosi.conf.d/ (files in it count for themselves, directories are read like this one).
Include= is read right after the assignment. Sub-images in mkosi.images/ start from the global state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagebuild.config import assign, host
from imagebuild.config.errors import ConfigError, ValueProblem
from imagebuild.config.ini import Entry, read_ini
from imagebuild.config.overrides import Overrides
from imagebuild.config.setting import Kind, Setting
from imagebuild.config.settings import (
    BY_ATTR,
    BY_NAME,
    BY_SPECIFIER,
    MATCH_NAMES,
    MATCH_SECTIONS,
    SECTIONS,
    SETTINGS,
)
from imagebuild.config.values import Ctx, path_exists, secret_problem

log = logging.getLogger("imagebuild.config")

BUILTIN_INCLUDES = ("mkosi-initrd", "mkosi-tools")


@dataclass
class State:
    """What the files assigned so far: ns holds values (None: assigned empty), defaults the @-values."""

    ns: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    included: set[tuple[int, int]] = field(default_factory=set)

    def copy(self) -> State:
        # Values are never mutated in place (assignments build new lists), so shallow copies suffice.
        return State(dict(self.ns), dict(self.defaults), set(self.included))


def suggest(name: str, candidates: list[str]) -> str:
    import difflib

    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return f"; did you mean {lowered[name.lower()]}=?"
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}=?" if close else ""


class Resolver:
    """Resolves the tree below top for the given command-line overrides."""

    def __init__(self, top: Path, overrides: Overrides) -> None:
        self.top = top
        self.cli = overrides
        self.state = State()
        self.base = top
        self.image: str | None = None
        self.immutable: set[str] = set()

    # ---- values ----------------------------------------------------------------------------------

    def get(self, attr: str) -> Any:
        """The current value of a setting as [Match] and specifiers see it (mkosi's finalize_default)."""
        if attr == "_directory":
            return self.top
        if attr == "_image":
            return self.image
        setting = BY_ATTR[attr]
        cli = self.cli.get(attr)
        if cli is None:
            return self._file_value(setting)
        if setting.kind is Kind.SCALAR:
            return cli.value if cli.value is not None else self._builtin_default(setting)
        if cli.reset:
            return cli.value
        files = self.state.ns.get(attr)
        if setting.kind is Kind.LIST:
            return [*cli.value, *(files or ())]
        return {**(files or {}), **cli.value}

    def _builtin_default(self, setting: Setting) -> Any:
        if setting.default_factory is not None:
            return setting.default_factory(self.get)
        d = setting.default
        if isinstance(d, tuple):
            return list(d)
        if isinstance(d, dict):
            return dict(d)
        return d

    def _file_value(self, setting: Setting) -> Any:
        ns = self.state.ns
        value = ns.get(setting.attr)
        if value is not None:
            return value
        # As in mkosi, an @-default is not used once the setting was assigned empty.
        if setting.attr not in ns and setting.attr in self.state.defaults:
            value = self.state.defaults[setting.attr]
        else:
            value = self._builtin_default(setting)
        # mkosi stores the default once it was looked at, so later @-defaults no longer change it.
        ns[setting.attr] = value
        if setting.attr == "include" and value:
            self._include_new(0)
        return value

    # ---- specifiers ------------------------------------------------------------------------------

    def expand(self, text: str, where: str) -> str:
        if "%" not in text:
            return text
        out: list[str] = []
        chars = iter(text)
        for c in chars:
            if c != "%":
                out.append(c)
                continue
            spec = next(chars, None)
            if spec is None or spec == "%":
                out.append("%")
            elif (setting := BY_SPECIFIER.get(spec)) is None:
                log.warning("%s: unknown specifier %%%s in %r, ignoring it (known: %s, %%%%)",
                            where, spec, text, " ".join("%" + k for k in BY_SPECIFIER))
            elif (value := self.get(setting.attr)) is None:
                log.warning("%s: %%%s stands for %s=, which is not set yet; ignoring it",
                            where, spec, setting.name)
            else:
                out.append(str(value))
        return "".join(out)

    # ---- assignments -----------------------------------------------------------------------------

    def assign(self, setting: Setting, raw: str, ctx: Ctx, *, to_defaults: bool) -> None:
        target = self.state.defaults if to_defaults else self.state.ns
        old = target.get(setting.attr)
        count = len(old) if setting.attr == "include" and isinstance(old, list) else 0
        target[setting.attr] = assign.apply(setting, raw, ctx, old)
        if setting.attr == "include" and not to_defaults:
            self._include_new(count)

    def _include_new(self, start: int) -> None:
        for p in list(self.state.ns.get("include") or ())[start:]:
            self.include(p)

    def include(self, p: Path | str) -> None:
        if isinstance(p, str):
            # mkosi's built-in configurations are not part of imagebuild; unsupported_settings() reports them.
            log.warning("Include=%s: mkosi's built-in configurations are not available, skipping it", p)
            return
        try:
            st = p.stat()
        except OSError as e:
            raise ConfigError(f"Include={p}: cannot read it: {e.strerror}") from None
        key = (st.st_dev, st.st_ino)
        if key in self.state.included:
            return
        # Marked before reading, so an include cycle ends instead of recursing forever.
        self.state.included.add(key)
        if p.is_dir():
            with self.at(p):
                self.parse_directory(p)
        else:
            self.parse_file(p)

    def apply_entries(self, entries: list[Entry], path: Path) -> None:
        known = set(SECTIONS)
        warned_sections: set[str] = set()
        for e in entries:
            if not e.key or e.section in MATCH_SECTIONS:
                continue
            where = f"{path}:{e.line}"
            if e.section not in known:
                if e.section not in warned_sections:
                    warned_sections.add(e.section)
                    import difflib

                    hint = difflib.get_close_matches(e.section, list(SECTIONS), n=1)
                    log.warning("%s: unknown section [%s], its settings are ignored%s", where, e.section,
                                f" (did you mean [{hint[0]}]?)" if hint else "")
                continue
            name = e.key.removeprefix("@")
            setting = BY_NAME.get(name)
            if setting is None:
                raise ConfigError(
                    f"{where}: unknown setting {e.key!r} in [{e.section}]"
                    + suggest(name, [s.name for s in SETTINGS])
                )
            if setting.name in self.immutable:
                raise ConfigError(
                    f"{where}: {setting.name}= cannot be changed here: it is only read from the command "
                    "line, mkosi.local.conf and mkosi.conf of the top directory (and, for Images=, "
                    "the global configuration)"
                )
            if e.section != setting.section and e.section not in setting.also_in:
                log.warning("%s: %s= belongs in the [%s] section, not [%s]", where, setting.name,
                            setting.section, e.section)
            if name != setting.name:
                log.warning("%s: %s= is a deprecated name, use %s= instead", where, name, setting.name)
            value = self.expand(e.value, where)
            self.assign(setting, value, Ctx(self.base, where), to_defaults=e.key.startswith("@"))

    # ---- [Match] ---------------------------------------------------------------------------------

    def matches(self, entries: list[Entry], path: Path) -> bool:
        """(AND of all [Match] sections) AND (OR of all [TriggerMatch] sections); no sections: true."""
        triggered: bool | None = None  # the |-conditions of the current section
        trigger_match: bool | None = None  # whether any [TriggerMatch] section was satisfied
        skip = False
        for e in entries:
            if e.section not in MATCH_SECTIONS:
                continue
            if not e.key:
                if e.section == "Match" and triggered is False:
                    return False
                if e.section == "TriggerMatch":
                    trigger_match = bool(trigger_match) or (not skip and triggered is not False)
                triggered = None
                skip = False
                continue
            if skip:
                continue
            where = f"{path}:{e.line}"
            value = e.value
            trigger = value.startswith("|")
            value = value.removeprefix("|")
            negate = value.startswith("!")
            value = value.removeprefix("!")
            value = self.expand(value, where)
            if not value:
                raise ConfigError(f"{where}: {e.key}= in [{e.section}] needs a value to compare with")
            result = self.condition(e.key, value, Ctx(self.base, where), e.section)
            if negate:
                result = not result
            if not trigger and not result:
                if e.section == "TriggerMatch":
                    skip = True
                    continue
                return False
            if trigger:
                triggered = bool(triggered) or result
        return trigger_match is not False

    def condition(self, key: str, value: str, ctx: Ctx, section: str) -> bool:
        try:
            if key == "PathExists":
                p = Path(os.path.expanduser(value))
                return path_exists(p if p.is_absolute() else ctx.base / p)
            if key == "HostArchitecture":
                from imagebuild.config.enums import Architecture
                from imagebuild.config.values import parse_enum

                return parse_enum(Architecture, value) == host.host().architecture
            if key == "SystemdVersion":
                from imagebuild.config.versions import parse_version_condition, version_matches

                parse_version_condition(value)
                version = host.systemd_version()
                if version is None:
                    log.warning("%s: SystemdVersion=: systemctl is not available here, the condition fails",
                                ctx.where)
                    return False
                return version_matches(value, version)
            setting = BY_NAME.get(key)
            if setting is None or setting.match is None:
                raise ConfigError(
                    f"{ctx.where}: {key}= cannot be used in [{section}] (accepted: "
                    f"{', '.join(n + '=' for n in MATCH_NAMES)})" + suggest(key, list(MATCH_NAMES))
                )
            # Unset settings go to the matcher too (as None, never matching): a malformed condition is an
            # error whatever the configuration holds.
            return setting.match(value, self.get(setting.attr), ctx)
        except ValueProblem as e:
            raise ConfigError(f"{ctx.where}: [{section}] {key}={value}: {e.describe()}") from None

    # ---- files and directories -------------------------------------------------------------------

    @contextmanager
    def at(self, base: Path) -> Iterator[None]:
        """Relative paths resolve against base while inside (mkosi changes its working directory)."""
        old, self.base = self.base, base
        try:
            yield
        finally:
            self.base = old

    def parse_file(self, path: Path) -> bool:
        entries = read_ini(path)
        if not self.matches(entries, path):
            return False
        self.apply_entries(entries, path)
        return True

    def parse_directory(self, directory: Path, *, top: bool = False) -> bool:
        conf = directory / "mkosi.conf"
        entries = read_ini(conf) if conf.is_file() else []
        if not self.matches(entries, conf):
            return False

        local = directory / "mkosi.local.conf"
        if local.is_file():
            self.parse_file(local)

        self.apply_default_paths(directory)
        self.apply_entries(entries, conf)

        if top:
            self.select_profile(directory)

        dropins = directory / "mkosi.conf.d"
        if dropins.is_dir():
            for p in sorted(dropins.iterdir()):
                if p.is_dir():
                    with self.at(p):
                        self.parse_directory(p)
                elif p.suffix == ".conf":
                    self.parse_file(p)
        return True

    def apply_default_paths(self, directory: Path) -> None:
        for setting in SETTINGS:
            for name in setting.paths:
                p = directory / name
                if not os.path.lexists(p):
                    continue
                where = str(p)
                if setting.path_read_text:
                    if setting.path_secret and (problem := secret_problem(p)):
                        raise ConfigError(f"{where}: {problem}")
                    try:
                        raw = p.read_text().rstrip("\n")
                    except (OSError, UnicodeDecodeError) as e:
                        raise ConfigError(f"{where}: cannot read it for {setting.name}=: {e}") from None
                else:
                    raw = name
                self.assign(setting, raw, Ctx(directory, where), to_defaults=setting.path_sets_default)

    def select_profile(self, directory: Path) -> None:
        profile = self.get("profile")
        self.immutable.add("Profile")
        if not profile:
            return
        profiles = directory / "mkosi.profiles"
        for candidate in (profiles / profile, profiles / f"{profile}.conf"):
            if candidate.exists():
                break
        else:
            available = (
                sorted(p.name.removesuffix(".conf") for p in profiles.iterdir()) if profiles.is_dir() else []
            )
            raise ConfigError(
                f"Profile={profile}: no {profile}/ or {profile}.conf in {profiles}"
                + (f" (available: {', '.join(available)})" if available else "")
            )
        if candidate.is_dir():
            with self.at(candidate):
                self.parse_directory(candidate)
        else:
            self.parse_file(candidate)

    # ---- images ----------------------------------------------------------------------------------

    def finalize(self) -> dict[str, Any]:
        """All settings of the current image; also reads @Include= files, as mkosi does at this point."""
        return {s.attr: self.get(s.attr) for s in SETTINGS}

    def builtin_defaults(self, values: dict[str, Any]) -> dict[str, Any]:
        """What each setting would be without any assignment, given the final values of the others."""
        saved_cli, saved_state = self.cli, self.state
        try:
            self.cli = Overrides()
            self.state = State(ns=dict(values))
            out = {}
            for s in SETTINGS:
                del self.state.ns[s.attr]
                out[s.attr] = self._builtin_default(s)
                self.state.ns[s.attr] = values[s.attr]
            return out
        finally:
            self.cli, self.state = saved_cli, saved_state

    def resolve(self) -> list[tuple[str | None, Path, dict[str, Any]]]:
        """(image name, directory, values) of every image, not yet ordered by dependencies."""
        cli_includes = self.cli.get("include")
        if cli_includes is not None:
            for p in cli_includes.value:
                self.include(p)

        self.parse_directory(self.top, top=True)
        self.get("images")
        self.immutable.add("Images")

        images: list[tuple[str | None, Path, dict[str, Any]]] = []
        for d in (self.top / "mkosi.images", self.top / "mkosi.presets"):
            if d.is_dir():
                break
        else:
            d = None

        if d is not None:
            global_state = self.state
            for p in sorted(d.iterdir()):
                if not p.is_dir() and p.suffix != ".conf":
                    continue
                name = p.name.removesuffix(".conf")
                if not name:
                    raise ConfigError(f"{p}: not a valid image name")
                self.state = global_state.copy()
                self.image = name
                if p.is_dir():
                    with self.at(p):
                        matched = self.parse_directory(p)
                    directory = p
                else:
                    matched = self.parse_file(p)
                    directory = self.top
                if matched:
                    images.append((name, directory, self.finalize()))
            self.state = global_state
            self.image = None

        if not images:
            images.append((None, self.top, self.finalize()))
        return images
