"""The settings table: one row per setting of mkosi v22's configuration language.

Parsing, the command line, the summary, the JSON output, the documentation, the "not supported yet"
check (config/support.py) and the cache keys (pipeline/inputs.py) are all driven by it.
Rows are in the order of the man page; SECTIONS gives the order of the sections.
"""

from __future__ import annotations

from imagebuild.config.setting import Setting
from imagebuild.config.table import (
    config_rows,
    content_rows,
    distribution_rows,
    host_rows,
    output_rows,
    validation_rows,
)

SECTIONS = ("Config", "Distribution", "Output", "Content", "Validation", "Host")
MATCH_SECTIONS = ("Match", "TriggerMatch")

# Every row says what its value changes (effect=, default: the image), what the files it names are (files=,
# for path-valued settings), when its value matters (matters=) and what the builder does not do yet
# (not_yet=; all other settings are acted on).

SETTINGS: tuple[Setting, ...] = (
    *config_rows.ROWS,
    *distribution_rows.ROWS,
    *output_rows.ROWS,
    *content_rows.ROWS,
    *validation_rows.ROWS,
    *host_rows.ROWS,
)

# The settings the builder acts on for every value (derived from the rows' not_yet).
SUPPORTED: frozenset[str] = frozenset(s.name for s in SETTINGS if s.supported)

BY_NAME: dict[str, Setting] = {}
for _s in SETTINGS:
    BY_NAME[_s.name] = _s
    for _alias in _s.compat_names:
        BY_NAME[_alias] = _s
BY_ATTR: dict[str, Setting] = {s.attr: s for s in SETTINGS}
BY_SPECIFIER: dict[str, Setting] = {s.specifier: s for s in SETTINGS if s.specifier}
BY_OPTION: dict[str, Setting] = {o: s for s in SETTINGS for o in s.options}

_NON_SETTING_MATCHES = ("PathExists", "SystemdVersion", "HostArchitecture")
MATCH_NAMES: tuple[str, ...] = (
    *(s.name for s in SETTINGS if s.match is not None),
    *_NON_SETTING_MATCHES,
)
