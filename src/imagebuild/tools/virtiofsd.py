"""Where virtiofsd is: the tools tree's, else the host's; and whether a config's qemu boots will have one.

Only the Rust virtiofsd counts (Debian trixie's package `virtiofsd`, /usr/libexec/virtiofsd). bookworm has no
such package: its qemu-system-common ships the old C virtiofsd of qemu 7.2 in /usr/lib/qemu/, whose
command line differs; it is not looked for.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from imagebuild.config import Config

PACKAGE = "virtiofsd"
# Below a root: Debian and Fedora install it in libexec, Arch in lib, some distributions in bin.
PLACES = ("usr/libexec/virtiofsd", "usr/lib/virtiofsd", "usr/bin/virtiofsd")

# Why a boot stops without it, and what to do (the RuntimeTrees= row's advice; no final period).
ADVICE = ("qemu shares these directories through virtiofsd, and there is none in the tools tree (or on this "
          "host without one): use ToolsTree=default (its tree has virtiofsd), add virtiofsd to "
          "ToolsTreePackages=, or install the package virtiofsd (Debian trixie or newer); nspawn needs none")


def find_virtiofsd(tools_tree: Path | None) -> str | None:
    """The path of virtiofsd as the command sees it (inside the tools tree's wrapper: /usr/...), or None."""
    if tools_tree is not None:
        for place in PLACES:
            if (tools_tree / place).is_file():
                return f"/{place}"
        return None
    for place in PLACES:
        if Path("/", place).is_file():
            return f"/{place}"
    return shutil.which("virtiofsd")


def config_lacks_virtiofsd(config: Config) -> bool:
    """Whether qemu boots of config would find no virtiofsd, decided without building anything: a default
    tools tree not built yet will have it when its package list does."""
    from imagebuild.tools import tools_tree as tt

    if config.tools_tree is None:
        return find_virtiofsd(None) is None
    if config.tools_tree != "default":
        return find_virtiofsd(Path(config.tools_tree)) is None
    try:
        spec = tt.tools_tree_spec(config)
    except BuildError:
        return True
    tree = tt.tools_cache_directory(config) / tt.tools_tree_name(spec)
    if (tree / "usr").is_dir():
        return find_virtiofsd(tree) is None
    return PACKAGE not in spec["packages"]
