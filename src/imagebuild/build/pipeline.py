"""The build: stages in the order of mkosi's execution flow, each logged with its duration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import outputs, paths
from imagebuild.build import firstboot, support, trees
from imagebuild.build.context import Context, Workspace
from imagebuild.distributions import distribution_for
from imagebuild.errors import BuildError
from imagebuild.log import logger, step
from imagebuild.outputs.publish import publish

if TYPE_CHECKING:
    from imagebuild.config import Config


@dataclass(frozen=True)
class BuildResult:
    """What a build produced: the artifacts, in the output directory."""

    config: Config
    artifacts: list[Path]

    @property
    def path(self) -> Path:
        """The main artifact (the tree for Format=directory, the image file otherwise)."""
        return self.artifacts[0]


def _install_distribution(context: Context) -> None:
    distribution_for(context.config).install(context)


# (description, stage) in the order of the man page's "Nutzungsablauf"; later issues add stages here.
STAGES: list[tuple[str, Callable[[Context], None]]] = [
    ("copy skeleton trees", trees.install_skeleton_trees),
    ("install the distribution and packages", _install_distribution),
    ("copy extra trees", trees.install_extra_trees),
    ("write first-boot settings", firstboot.configure_hostname),
]


def output_path(config: Config) -> Path:
    return paths.output_directory(config) / config.output


def preflight(config: Config) -> None:
    """Refuse a config this builder cannot build, before any work is done."""
    support.check_supported(config)
    distribution_for(config)
    outputs.producer_for(config)


def build_image(config: Config, *, force: int = 0, keep_workspace_on_failure: bool = False) -> BuildResult:
    """Build one image and publish its artifacts atomically into the output directory."""
    preflight(config)
    destination = output_path(config)
    if (destination.exists() or destination.is_symlink()) and not force:
        raise BuildError(f"{destination} already exists; use -f to rebuild it")
    logger.info("Building %s (%s %s, %s, Format=%s)", config.output, config.distribution,
                config.release, config.architecture, config.format)
    with Workspace(config, keep_on_failure=keep_workspace_on_failure) as context:
        for description, stage in STAGES:
            with step(description):
                stage(context)
        with step(f"write the {config.format} output"):
            staged = outputs.produce(context)
            artifacts = []
            for artifact in staged:
                target = destination.parent / artifact.name
                publish(artifact, target, trash=context.workspace)
                artifacts.append(target)
    logger.info("Wrote %s", ", ".join(str(a) for a in artifacts))
    return BuildResult(config, artifacts)
