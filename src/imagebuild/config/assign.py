"""Turning one textual assignment into a new value: splitting lists, parsing items, reset and merge rules."""

from __future__ import annotations

import shlex
from typing import Any

from imagebuild.config.errors import ConfigError, ValueProblem
from imagebuild.config.setting import Kind, Setting
from imagebuild.config.values import Ctx


def split_items(setting: Setting, raw: str) -> list[str]:
    """The items of a list or dict value: split at the delimiter(s) and at newlines."""
    if setting.unescape:
        lexer = shlex.shlex(raw, posix=True)
        lexer.whitespace_split = True
        lexer.whitespace = "\n" + setting.delimiter
        lexer.commenters = ""
        try:
            return [item for item in lexer if item]
        except ValueError as e:  # unbalanced quotes
            raise ValueProblem(f"{raw!r} cannot be split: {e}", "shell-quoted words") from None
    for d in setting.delimiter:
        raw = raw.replace(d, "\n")
    return [item.strip() for item in raw.split("\n") if item.strip()]


def parse_item(setting: Setting, item: str, ctx: Ctx) -> Any:
    return setting.parse(item, ctx)


def apply(setting: Setting, raw: str, ctx: Ctx, old: Any) -> Any:
    """The value after assigning raw on top of old (None: unset).

    Scalars: the new value replaces the old; an empty value unsets (the default applies again).
    Lists and dicts: items are added; an empty value empties them (and so drops the default).
    Raises ConfigError naming ctx.where and the setting.
    """
    try:
        if setting.kind is Kind.SCALAR:
            if not raw:
                return old if setting.merge else None
            value = setting.parse(raw, ctx)
            return setting.merge(old, value) if setting.merge else value

        if not raw.strip():
            if not setting.reset:
                return old
            return [] if setting.kind is Kind.LIST else {}

        items = split_items(setting, raw)
        if setting.kind is Kind.LIST:
            return [*(old or ()), *(setting.parse(i, ctx) for i in items)]
        merged = dict(old or {})
        for i in items:
            merged.update(setting.parse(i, ctx))
        return merged
    except ValueProblem as e:
        raise ConfigError(f"{ctx.where}: {setting.name}={shorten(raw)}: {e.describe()}") from None


def shorten(raw: str) -> str:
    """A value as quoted in an error message: long and multi-line values are cut."""
    first = raw.strip().split("\n", 1)[0]
    return first if first == raw and len(first) <= 60 else first[:57] + "..."
