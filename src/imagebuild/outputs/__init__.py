"""One module per Format=: turn the finished root into the artifacts the user asked for.

The module for a format is imagebuild.outputs.<name> (with '-' as '_') and has
`produce(context) -> list[Path]`, which writes the artifacts into context.staging.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context


Producer = Callable[["Context"], list[Path]]

FORMATS = ("directory", "tar", "cpio", "disk", "uki", "esp", "sysext", "confext", "portable", "none")


def _available() -> list[str]:
    return [fmt for fmt in FORMATS if importlib.util.find_spec(f"imagebuild.outputs.{fmt}") is not None]


def producer_for(config: Config) -> Producer:
    fmt = str(config.format)
    try:
        module = importlib.import_module(f"imagebuild.outputs.{fmt.replace('-', '_')}")
    except ModuleNotFoundError:
        raise BuildError(
            f"not supported yet: Format={fmt} (this version of imagebuild writes: {', '.join(_available())})"
        ) from None
    produce: Producer = module.produce
    return produce


def produce(context: Context) -> list[Path]:
    """Create the artifacts of config.format in context.staging and return their paths."""
    return producer_for(context.config)(context)
