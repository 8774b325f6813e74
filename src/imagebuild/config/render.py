"""Rendering values for people (summary) and for programs (JSON with mkosi v22's encodings)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

from imagebuild.config.model import Args, Config
from imagebuild.config.setting import Setting
from imagebuild.config.settings import SECTIONS, SETTINGS
from imagebuild.config.values import KeySource, QemuDrive, RootPassword, TreeSpec


def encode(value: Any) -> Any:
    """A JSON-ready value in mkosi v22's encoding (paths as strings, trees as {source, target}, ...)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, TreeSpec):
        return {"source": str(value.source), "target": None if value.target is None else str(value.target)}
    if isinstance(value, KeySource):
        return {"source": value.source, "type": value.type.value}
    if isinstance(value, RootPassword):
        return [value.value, value.hashed]
    if isinstance(value, QemuDrive):
        return {
            "directory": None if value.directory is None else str(value.directory),
            "id": value.id,
            "options": value.options,
            "size": value.size,
        }
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [encode(v) for v in value]
    raise TypeError(f"cannot encode {type(value).__name__} for JSON")


def to_json_dict(config: Config) -> dict[str, Any]:
    """One image with mkosi v22's key names (the setting names, plus Image)."""
    out: dict[str, Any] = {s.name: encode(getattr(config, s.attr)) for s in SETTINGS if not s.extension}
    out["Image"] = config.image
    return dict(sorted(out.items()))


def format_json(images: list[Config]) -> str:
    import json

    return json.dumps({"Images": [to_json_dict(c) for c in images]}, indent=4, sort_keys=True)


_LABEL_WIDTH = max(len(s.label) for s in SETTINGS if not s.extension) + 4
_PAD = " " * (_LABEL_WIDTH + 2)


def show(setting: Setting, value: Any) -> str:
    """The summary text of one setting's value."""
    if setting.show is not None:
        return setting.show(value)
    if value is None:
        return setting.unset_text
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, dict):
        items = [f"{k}={v}" for k, v in value.items()]
    elif isinstance(value, list):
        items = [str(v) for v in value]
    else:
        return str(value)
    return f"\n{_PAD}".join(items) if items else "none"


def format_image(config: Config) -> str:
    lines = [f"IMAGE: {config.image or 'default'}"]
    for section in SECTIONS:
        lines += ["", f"    {section.upper()}:"]
        for s in SETTINGS:
            if s.section == section and not s.extension:
                lines.append(f"{s.label:>{_LABEL_WIDTH}}: {show(s, getattr(config, s.attr))}")
    return "\n".join(lines) + "\n"


def format_summary(args: Args, images: list[Config]) -> str:
    """The human-readable summary of every image, in build order."""
    return "\n".join(format_image(c) for c in images)
