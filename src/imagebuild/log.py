"""Progress logging: one line per step with its duration; --debug adds every command run."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

logger = logging.getLogger("imagebuild")


def setup_logging(debug: bool = False) -> None:
    """Log to stderr in a compact form; only the CLI calls this, library users keep their own setup."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Log the start and the duration of a build step."""
    logger.info("‣ %s", name)
    start = time.monotonic()
    try:
        yield
    finally:
        logger.info("  %s took %.1fs", name, time.monotonic() - start)
