"""Running the boot chain's tools (ukify, sbsign, depmod ...) from the tools tree, or else the host.

This host has no ukify, sbsigntool or systemd-measure: they normally come from a tools tree (ToolsTree=).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.tools import tools_tree as tools

if TYPE_CHECKING:
    from imagebuild.context import Context

# Inside a tools tree, commands must find the tree's programs, not what the host's $PATH puts first
# (a pyenv python3 shim would run ukify with a Python that lacks pefile).
TREE_PATH = "/usr/bin:/usr/sbin"


def tool(context: Context, name: str, *, package: str) -> str:
    """Where `name` is, as the commands run by run_tool see it."""
    return tools.require_tool(context, name, package=package)


def has_file(context: Context, path: str) -> bool:
    """Whether /usr/... exists where the tools run (the tools tree's /usr, else the host's)."""
    base = context.tools_tree if context.tools_tree is not None else Path("/")
    return (base / path.lstrip("/")).exists()


def run_tool(
    context: Context,
    argv: Sequence[str | Path],
    *,
    what: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    full_env = dict(env or {})
    if context.tools_tree is not None:
        full_env.setdefault("PATH", TREE_PATH)
    return tools.run_tool(context, argv, what=what, env=full_env, cwd=cwd)
