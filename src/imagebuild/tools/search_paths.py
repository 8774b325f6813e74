"""ExtraSearchPaths=: directories (and single programs) looked up before $PATH while imagebuild runs.

As in mkosi v22: only without ToolsTree= (a tools tree brings its own programs); a directory is put in
front of $PATH, a file is reachable by its name through a temporary directory of symlinks in front of
those. Everything the build and the run verbs look up (shutil.which in find_tool) and the commands they
start (which inherit the environment) see it; $PATH is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.config import Config


@contextlib.contextmanager
def extra_search_paths(config: Config | None) -> Iterator[None]:
    if config is None or config.tools_tree is not None or not config.extra_search_paths:
        yield
        return
    entries = [Path(p).absolute() for p in config.extra_search_paths]
    old = os.environ.get("PATH")
    with tempfile.TemporaryDirectory(prefix="imagebuild-search-path-") as links:
        for entry in entries:
            if not entry.is_dir():
                link = Path(links) / entry.name
                if not link.is_symlink():
                    link.symlink_to(entry)
        front = [links, *(os.fspath(e) for e in entries if e.is_dir())]
        os.environ["PATH"] = ":".join([*front, *([old] if old else [])])
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("PATH", None)
            else:
                os.environ["PATH"] = old
