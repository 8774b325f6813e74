"""The INI dialect of mkosi.conf: sections, repeated keys, indented continuation lines, comments.

Unlike configparser it keeps every assignment of a repeated key, in order, with its line number.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from imagebuild.config.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """One assignment, or (key == "") the end of a section, which [Match] evaluation needs."""

    section: str
    key: str
    value: str
    line: int


def _strip_comment(line: str) -> str:
    # As in mkosi (and systemd units), "#" and ";" start a comment anywhere on a line.
    for c in ("#", ";"):
        i = line.find(c)
        if i >= 0:
            line = line[:i]
    return line


def parse_ini(text: str, where: str) -> list[Entry]:
    """Split text into entries; raises ConfigError (with where:line) for malformed lines."""
    entries: list[Entry] = []
    section: str | None = None
    key: str | None = None
    value: str | None = None
    key_line = 0
    number = 0

    # mkosi dedents the whole file first, so a file indented as a whole reads like an unindented one.
    for number, raw in enumerate(textwrap.dedent(text).splitlines(), start=1):
        line = _strip_comment(raw)
        if not line.strip():
            continue

        # An indented line continues the value of the setting before it.
        if section is not None and key is not None and value is not None and line[0].isspace():
            value = f"{value}\n{line.strip()}"
            continue

        if section is not None and key is not None and value is not None:
            entries.append(Entry(section, key, value, key_line))
            key = value = None

        line = line.strip()

        if line.startswith("["):
            if not line.endswith("]"):
                raise ConfigError(
                    f"{where}:{number}: {line!r} is not a valid section header (accepted: [SectionName])"
                )
            if section is not None:
                entries.append(Entry(section, "", "", number))
            section = line[1:-1].strip()
            if not section:
                raise ConfigError(f"{where}:{number}: the section name cannot be empty")
            continue

        if section is None:
            raise ConfigError(
                f"{where}:{number}: {line!r} is outside of any section "
                "(settings follow a section header such as [Content])"
            )

        name, eq, rest = line.partition("=")
        if not eq:
            raise ConfigError(f"{where}:{number}: {name.strip()!r} must be followed by '=' (Key=value)")
        name = name.strip()
        if not name:
            raise ConfigError(f"{where}:{number}: missing setting name before '=' in {line!r}")
        key, value, key_line = name, rest.strip(), number

    if section is not None and key is not None and value is not None:
        entries.append(Entry(section, key, value, key_line))
    if section is not None:
        # The end of the last section is the end of the file.
        entries.append(Entry(section, "", "", max(number, 1)))
    return entries


def read_ini(path: Path) -> list[Entry]:
    """Read and parse one configuration file."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    return parse_ini(text, str(path))
