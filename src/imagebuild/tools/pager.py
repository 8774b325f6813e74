"""Long output (help, the Markdown reference) through a pager on a terminal, as mkosi v22 pages it."""

from __future__ import annotations

import os
import pydoc
import sys

# less options when $MKOSI_LESS does not say otherwise (mkosi's): F quit if one screen, X keep the
# screen, M verbose prompt, K quit on Ctrl-C, R pass colours through.
DEFAULT_LESS = "FXMKR"


def page(text: str, enabled: bool) -> None:
    """Show text through $MANPAGER/$PAGER/less when enabled and both stdin and stdout are terminals
    (pydoc's choice), else print it."""
    if enabled:
        os.environ["LESS"] = os.environ.get("MKOSI_LESS", DEFAULT_LESS)
        pydoc.pager(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
