"""Format=none: the image is only a build environment; what the build scripts put in $OUTPUTDIR is the output."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.context import Context


def produce(context: Context) -> list[Path]:
    # The build scripts write into the staging directory ($OUTPUTDIR); the pipeline publishes all of it.
    return []
