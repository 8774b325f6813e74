"""One module per Format=: turn the finished root into the artifacts the user asked for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.build.context import Context
    from imagebuild.config import Config


Producer = Callable[["Context"], list[Path]]


def producer_for(config: Config) -> Producer:
    from imagebuild.outputs import directory

    producers: dict[str, Producer] = {"directory": directory.produce}
    fmt = str(config.format)
    try:
        return producers[fmt]
    except KeyError:
        raise BuildError(
            f"not supported yet: Format={fmt} (this version of imagebuild writes: {', '.join(producers)})"
        ) from None


def produce(context: Context) -> list[Path]:
    """Create the artifacts of config.format in context.staging and return their paths."""
    return producer_for(context.config)(context)
