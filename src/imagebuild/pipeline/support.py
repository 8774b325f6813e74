"""A build that needs a setting this builder does not act on yet stops before doing any work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.config import Config


def check_supported(config: Config) -> None:
    # The rows of the settings table say what the builder does not act on yet (Setting.not_yet).
    from imagebuild.config.support import refusals

    found = refusals(config)
    if found:
        raise BuildError("\n".join(str(r) for r in found))
