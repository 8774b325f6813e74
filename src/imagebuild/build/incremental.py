"""Incremental=: a cache of the installed image (after the prepare scripts), reused by the next build."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def restore(context: Context) -> bool:
    """Put the cached image into context.root; False when there is none to reuse."""
    return False


def save(context: Context) -> None:
    return None
