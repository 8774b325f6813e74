"""Files for Ssh=, Autologin= and MakeInitrd=."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def configure_access(context: Context) -> None:
    return None
