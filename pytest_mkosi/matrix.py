"""--mkosi-config x --mkosi-matrix x markers -> cells: one configuration with its override values each.

A cell is what a session fixture is parametrized by, so it is hashable and compares by value: pytest
groups the tests of one cell and builds, boots and caches per cell. Nothing here imports pytest; the
plugin turns MatrixError into a usage error and marker arguments into MarkerSettings.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagebuild.config import Config, ConfigError, Overrides, Setting
from imagebuild.config.overrides import CliValue
from imagebuild.config.setting import Kind
from imagebuild.config.settings import BY_NAME, SETTINGS
from imagebuild.config.values import Ctx


class MatrixError(Exception):
    """A --mkosi-matrix value or a marker argument that names no setting or an invalid value."""


# The settings every id names, as resolved, after the configuration's name.
ID_SETTINGS = ("Distribution", "Release", "Architecture")


@dataclass(frozen=True)
class Axis:
    """One --mkosi-matrix=SETTING=V1,V2,... option."""

    setting: str  # the mkosi.conf name
    values: tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    """One configuration directory with the values (by mkosi.conf name) that override its files."""

    directory: Path
    settings: tuple[tuple[str, str], ...] = ()

    def with_settings(self, extra: Iterable[tuple[str, str]]) -> Cell:
        merged = dict(self.settings)
        merged.update(extra)
        return Cell(self.directory, tuple(merged.items()))

    def overrides(self, base: Overrides) -> Overrides:
        """base (--mkosi-args) with the cell's values added after it, so that the cell's win."""
        combined = Overrides({attr: CliValue(v.value, v.reset) for attr, v in base.values.items()})
        for name, raw in self.settings:
            combined.add(BY_NAME[name], raw, Ctx(self.directory, f"--mkosi-matrix {name}"))
        return combined


def setting_named(name: str, where: str) -> Setting:
    setting = BY_NAME.get(name)
    if setting is None:
        close = difflib.get_close_matches(name, [s.name for s in SETTINGS], n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else " (settings are named as in mkosi.conf)"
        raise MatrixError(f"{where}: unknown setting {name!r}{hint}")
    return setting


def parse_value(setting: Setting, raw: str, where: str) -> Any:
    """The typed value of raw for setting, or MatrixError saying what is accepted."""
    try:
        overrides = Overrides()
        overrides.add(setting, raw, Ctx(Path.cwd(), where))
    except ConfigError as e:
        raise MatrixError(f"{where}: {e}") from None
    value = overrides.values[setting.attr].value
    return value


def parse_axis(text: str) -> Axis:
    """SETTING=V1,V2,... as given to --mkosi-matrix."""
    where = f"--mkosi-matrix={text}"
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise MatrixError(f"{where}: expected SETTING=VALUE1,VALUE2,... (e.g. Release=bookworm,trixie)")
    setting = setting_named(name.strip(), where)
    items = tuple(v.strip() for v in values.split(",") if v.strip())
    for item in items:
        parse_value(setting, item, where)
    if len(set(items)) != len(items):
        raise MatrixError(f"{where}: a value is given twice")
    return Axis(setting.name, items)


def check_axes(axes: Sequence[Axis]) -> None:
    names = [a.setting for a in axes]
    for name in names:
        if names.count(name) > 1:
            raise MatrixError(f"--mkosi-matrix: {name} is given twice; list all its values in one option")


def cells(directories: Sequence[Path], axes: Sequence[Axis]) -> list[Cell]:
    """The cross product, configuration first, then the axes in the order given."""
    check_axes(axes)
    combos = itertools.product(*[[(a.setting, v) for v in a.values] for a in axes])
    return [Cell(d, combo) for d, combo in itertools.product(directories, list(combos))]


# ---- markers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkerSettings:
    """The keyword arguments of one @pytest.mark.mkosi or mkosi_skip, validated."""

    where: str  # for messages: "@pytest.mark.mkosi on test_x"
    values: Mapping[str, tuple[str, ...]]  # setting name -> accepted raw values (alternatives)
    reason: str = ""

    @classmethod
    def of(cls, kwargs: Mapping[str, object], where: str, reason: str = "") -> MarkerSettings:
        values: dict[str, tuple[str, ...]] = {}
        for name, value in kwargs.items():
            setting = setting_named(name, where)
            raws = _raw_values(setting, value)
            for raw in raws:
                parse_value(setting, raw, f"{where}: {setting.name}")
            values[setting.name] = raws
        return cls(where, values, reason)


def _raw(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _raw_values(setting: Setting, value: object) -> tuple[str, ...]:
    """A scalar setting takes one value or a list of alternatives; a list setting takes its items."""
    if isinstance(value, list | tuple):
        if setting.kind is not Kind.SCALAR:
            return (",".join(_raw(v) for v in value),)
        return tuple(_raw(v) for v in value)
    return (_raw(value),)


def matches(config: Config, setting_name: str, raws: Sequence[str]) -> bool:
    """Whether the resolved value of a setting is one of raws."""
    setting = BY_NAME[setting_name]
    actual = getattr(config, setting.attr)
    for raw in raws:
        wanted = parse_value(setting, raw, setting_name)
        if setting.kind is Kind.LIST and isinstance(wanted, list):
            if all(item in actual for item in wanted):
                return True
        elif setting.kind is Kind.DICT and isinstance(wanted, dict):
            if all(actual.get(k) == v for k, v in wanted.items()):
                return True
        elif wanted == actual:
            return True
    return False


Resolve = Callable[[Cell], Config]


@dataclass
class CellConfigs:
    """The resolved images of each cell, resolved once per session (collection and fixtures share it)."""

    overrides: Overrides  # --mkosi-args
    load: Callable[[Path, Overrides], list[Config]]
    _memo: dict[Cell, list[Config]] = field(default_factory=dict)

    def configs(self, cell: Cell) -> list[Config]:
        """All images in build order; raises the builder's ConfigError for a bad configuration."""
        if cell not in self._memo:
            self._memo[cell] = self.load(cell.directory, cell.overrides(self.overrides))
        return self._memo[cell]

    def main(self, cell: Cell) -> Config:
        return self.configs(cell)[-1]


def apply_markers(base: Sequence[Cell], axes: Sequence[Axis], markers: Sequence[MarkerSettings],
                  resolve: Resolve) -> list[Cell]:
    """The cells of a test with @pytest.mark.mkosi(...) markers (closest first; the closest wins).

    A setting that is a matrix axis narrows to the cells whose value matches; any other setting
    overrides the files (alternatives make one cell each), unless the cell already resolves to it.
    """
    wanted: dict[str, tuple[str, ...]] = {}
    for marker in reversed(markers):  # module, class, then function: later (closer) ones win
        wanted.update(marker.values)
    axis_names = {a.setting for a in axes}
    result: list[Cell] = []
    for cell in base:
        if not all(matches(resolve(cell), n, raws) for n, raws in wanted.items() if n in axis_names):
            continue
        free = [(n, raws) for n, raws in wanted.items() if n not in axis_names]
        for choice in itertools.product(*[[(n, r) for r in raws] for n, raws in free]):
            config = resolve(cell)
            needed = [(n, r) for n, r in choice if not matches(config, n, (r,))]
            new = cell.with_settings(needed) if needed else cell
            if new not in result:
                result.append(new)
    return result


def skip_reason(config: Config, skips: Sequence[MarkerSettings]) -> str | None:
    """The reason of the first mkosi_skip marker whose settings all match the resolved config."""
    for marker in skips:
        if all(matches(config, n, raws) for n, raws in marker.values.items()):
            return marker.reason or f"skipped by {marker.where}"
    return None


# ---- ids ----------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def _word(value: object) -> str:
    return _UNSAFE.sub("_", str(value)).strip("_") or "none"


def config_names(directories: Sequence[Path]) -> dict[Path, str]:
    """The configuration's part of the ids: its directory name, with its parent's if two collide."""
    names = {d: d.resolve().name or "root" for d in directories}
    counts = {n: list(names.values()).count(n) for n in names.values()}
    return {d: f"{d.resolve().parent.name}_{n}" if counts[n] > 1 else n for d, n in names.items()}


def cell_id(cell: Cell, config: Config, names: Mapping[Path, str]) -> str:
    """e.g. minimal-debian-trixie-arm64, then the other values the cell sets (Format=disk -> disk)."""
    words = [names.get(cell.directory) or cell.directory.name]
    words += [_word(getattr(config, BY_NAME[n].attr)) for n in ID_SETTINGS]
    words += [_word(raw) for name, raw in cell.settings if name not in ID_SETTINGS]
    return "-".join(words)
