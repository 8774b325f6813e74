"""The build: stages in the order of mkosi's execution flow ("Nutzungsablauf"), each logged with its duration.

Each stage lives in the module that owns its settings; a stage with nothing to do for a config returns at
once. Settings no stage acts on yet are refused before the build starts (build/support.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import outputs, paths
from imagebuild.boot import bootloader, uki
from imagebuild.build import (
    access,
    cleanup,
    firstboot,
    incremental,
    repository,
    scripts,
    support,
    system_setup,
    trees,
)
from imagebuild.build.context import Context, Workspace
from imagebuild.distributions import distribution_for
from imagebuild.errors import BuildError
from imagebuild.log import logger, step
from imagebuild.outputs.publish import publish

if TYPE_CHECKING:
    from imagebuild.config import Config

Stage = tuple[str, Callable[[Context], None]]


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


# Steps 1-3: before the image's own content.
PREPARE_WORKSPACE: list[Stage] = [
    ("copy package manager trees", repository.install_package_manager_trees),
    ("sync repository metadata", repository.sync_repository_metadata),
    ("copy base trees", trees.install_base_trees),
]

# Steps 5-10: what an incremental cache (step 4, 11) stands in for.
INSTALL: list[Stage] = [
    ("copy skeleton trees", trees.install_skeleton_trees),
    ("install the distribution and packages", _install_distribution),
    ("run prepare scripts (final)", scripts.run_prepare_scripts_final),
    ("install build packages and run prepare scripts (build)", scripts.prepare_build_overlay),
]

# Step 12: build scripts run on the image plus the build overlay.
BUILD: list[Stage] = [
    ("run build scripts", scripts.run_build_scripts),
]

# Steps 14-27: everything after the build scripts, up to the finalize scripts.
CUSTOMIZE: list[Stage] = [
    ("copy build script output", scripts.install_build_output),
    ("copy extra trees", trees.install_extra_trees),
    ("run post-install scripts", scripts.run_postinst_scripts),
    ("write files for Ssh=, Autologin= and MakeInitrd=", access.configure_access),
    ("install the boot loader", bootloader.install_bootloader),
    ("run systemd-sysusers", system_setup.run_sysusers),
    ("run systemd-tmpfiles", system_setup.run_tmpfiles),
    ("run systemctl preset-all", system_setup.run_preset_all),
    ("run depmod", system_setup.run_depmod),
    ("run systemd-firstboot", firstboot.configure_firstboot),
    ("run systemd-hwdb", system_setup.run_hwdb),
    ("remove packages and files", cleanup.remove_packages_and_files),
    ("run finalize scripts", scripts.run_finalize_scripts),
    ("build unified kernel images", uki.build_unified_kernel_images),
]


def output_path(config: Config) -> Path:
    return paths.output_directory(config) / config.output


def preflight(config: Config) -> None:
    """Refuse a config this builder cannot build, before any work is done."""
    support.check_supported(config)
    distribution_for(config)
    outputs.producer_for(config)


def _run(stages: list[Stage], context: Context) -> None:
    for description, stage in stages:
        with step(description):
            stage(context)


def run_stages(context: Context) -> None:
    """Steps 1-28 of the execution flow; the caller writes the output format."""
    _run(PREPARE_WORKSPACE, context)
    with step("look for a cached image"):
        restored = incremental.restore(context)
    if not restored:
        _run(INSTALL, context)
        with step("cache the image"):
            incremental.save(context)
    _run(BUILD, context)
    if str(context.config.format) == "none":
        # Step 13: with Format=none only the build scripts' output matters.
        return
    _run(CUSTOMIZE, context)


def build_image(config: Config, *, force: int = 0, keep_workspace_on_failure: bool = False) -> BuildResult:
    """Build one image and publish its artifacts atomically into the output directory."""
    preflight(config)
    destination = output_path(config)
    if (destination.exists() or destination.is_symlink()) and not force:
        raise BuildError(f"{destination} already exists; use -f to rebuild it")
    logger.info("Building %s (%s %s, %s, Format=%s)", config.output, config.distribution,
                config.release, config.architecture, config.format)
    with Workspace(config, keep_on_failure=keep_workspace_on_failure) as context:
        run_stages(context)
        with step(f"write the {config.format} output"):
            staged = outputs.produce(context)
            artifacts = []
            for artifact in staged:
                target = destination.parent / artifact.name
                publish(artifact, target, trash=context.workspace)
                artifacts.append(target)
    logger.info("Wrote %s", ", ".join(str(a) for a in artifacts) or "nothing (Format=none)")
    return BuildResult(config, artifacts)
