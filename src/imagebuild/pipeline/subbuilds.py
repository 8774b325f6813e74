"""Images this pipeline builds for a build or a verb besides the one asked for: the default tools tree here,
the default initrd through the build's Context. Lower layers (boot/, tools/) never import the pipeline; they
are handed `pipeline.sub_build`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.pipeline import pipeline
from imagebuild.tools import tools_tree

if TYPE_CHECKING:
    from imagebuild.config import Config


def tools_tree_for(config: Config) -> Path | None:
    """The tools tree config's tools come from (None: the host's); ToolsTree=default is built if needed."""
    return tools_tree.tools_tree_for(config, pipeline.sub_build)
