"""A build that needs a setting this builder does not act on yet stops before doing any work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.config import Config


def check_supported(config: Config) -> None:
    # The settings table says which settings the pipeline implements (settings.SUPPORTED).
    from imagebuild.config import unsupported_settings

    unsupported = unsupported_settings(config)
    if unsupported:
        raise BuildError("not supported yet: " + ", ".join(f"{name}=" for name in unsupported))
