"""The build: stages in the order of mkosi's execution flow ("Nutzungsablauf"), each logged with its duration.

Each stage lives in the module that owns its settings; a stage with nothing to do for a config returns at
once. Settings no stage acts on yet are refused before the build starts (pipeline/support.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import outputs, paths
from imagebuild.boot import bootloader, uki
from imagebuild.context import Context, Workspace
from imagebuild.distributions import distribution_for
from imagebuild.errors import BuildError
from imagebuild.log import logger, step
from imagebuild.outputs import checksum, manifest, naming
from imagebuild.outputs.disk import write_partitions_before_esp
from imagebuild.outputs.existing import existing_outputs, remove_output
from imagebuild.outputs.overlay import strip_base_trees
from imagebuild.outputs.publish import publish
from imagebuild.outputs.repart import preflight as repart_preflight
from imagebuild.outputs.timestamps import clamp_mtimes
from imagebuild.pipeline import (
    access,
    cleanup,
    firstboot,
    incremental,
    install_cache,
    repository,
    scripts,
    support,
    system_setup,
    tool_checks,
    trees,
)
from imagebuild.pipeline.workspace_check import check_workspace

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
]
BASE_TREES: Stage = ("copy base trees", trees.install_base_trees)

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
    ("keep only the changes to the base trees (Overlay=)", strip_base_trees),
    ("write partitions (first systemd-repart pass, for the verity root hash)", write_partitions_before_esp),
    ("build unified kernel images", uki.build_unified_kernel_images),
]


def output_path(config: Config) -> Path:
    return paths.output_directory(config) / config.output


def preflight(config: Config) -> None:
    """Refuse a config this builder cannot build, before any work is done."""
    support.check_supported(config)
    check_workspace(config)
    repart_preflight(config)
    distribution_for(config).check(config)
    outputs.producer_for(config)
    scripts.check_scripts(config)
    # Last: the tools the later stages run (systemd-repart, mkfs.*, ukify, sbsign) and the keys they read.
    tool_checks.preflight(config)


def _run(stages: list[Stage], context: Context) -> None:
    for description, stage in stages:
        with step(description):
            stage(context)


def _needs_metadata_after_install(config: Config) -> bool:
    # Scripts that run after the cached part may install packages (mkosi-install).
    return bool(config.build_scripts or config.postinst_scripts or config.finalize_scripts)


def _install(context: Context) -> None:
    """Steps 3 and 5-10, or a copy of their result from the install cache; the image is then cached."""
    entry = install_cache.entry_for(context)
    if entry is not None:
        with step("copy the installed tree from the install cache"):
            restored = install_cache.restore(context, entry)
        if not restored:
            logger.info("No installed tree in the install cache for this configuration and repository "
                        "metadata yet: installing")
    if entry is None or not restored:
        _run([BASE_TREES, *INSTALL], context)
        if entry is not None:
            with step("save the installed tree in the install cache"):
                install_cache.save(context, entry)
    with step("cache the image"):
        incremental.save(context)


def run_stages(context: Context) -> None:
    """Steps 1-28 of the execution flow; the caller writes the output format."""
    config = context.config
    tool_checks.after_default_tools_tree(config, context.tools_tree)
    reusable = config.incremental and incremental.usable(config)
    if reusable and not _needs_metadata_after_install(config):
        # The cached image already holds the base trees and nothing will be installed: skipping the
        # metadata sync keeps an incremental build free of network round trips.
        _run(PREPARE_WORKSPACE[:1], context)
    else:
        _run(PREPARE_WORKSPACE, context)
    if reusable:
        with step("restore the cached image"):
            incremental.restore(context)
    else:
        _install(context)
    _run(BUILD, context)
    if str(config.format) == "none":
        # Step 13: with Format=none only the build scripts' output matters.
        return
    _run(CUSTOMIZE, context)


def _stale_outputs(config: Config, keep: set[str]) -> list[Path]:
    """Earlier artifacts of this image that the new build did not replace (another compression, a
    manifest no longer asked for ...)."""
    return [p for p in existing_outputs(config) if p.name not in keep]


def _artifact_symlink(context: Context, main: Path) -> Path | None:
    """mkosi's `<Output>` symlink to the main artifact when its name differs (image -> image.tar.zst)."""
    name = context.config.output
    if main.name == name:
        return None
    link = context.workspace / "links" / name
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(main.name)
    return link


def build_image(config: Config, *, force: int = 0, keep_workspace_on_failure: bool = False,
                debug_shell: bool = False, build_script_arguments: tuple[str, ...] = (),
                use_install_cache: bool = True) -> BuildResult:
    """Build one image and publish its artifacts atomically into the output directory."""
    preflight(config)
    destination = output_path(config)
    main_name = naming.artifact_name(config)
    existing = [p for p in (destination, destination.parent / main_name) if p.exists() or p.is_symlink()]
    if existing and str(config.format) != "none" and not force:
        raise BuildError(f"{existing[0]} already exists; use -f to rebuild it")
    if config.incremental and force >= 2:
        incremental.drop(config)
    if config.build_directory is not None:
        # $BUILDDIR is shared between builds; a configured one that is missing is created.
        Path(config.build_directory).mkdir(parents=True, exist_ok=True)
    logger.info("Building %s (%s %s, %s, Format=%s)", config.output, config.distribution,
                config.release, config.architecture, config.format)
    with Workspace(config, keep_on_failure=keep_workspace_on_failure, sub_build=sub_build) as context:
        context.debug_shell = debug_shell
        context.install_cache = use_install_cache
        context.build_script_arguments = build_script_arguments
        run_stages(context)
        with step(f"write the {config.format} output"):
            if str(config.format) != "none":
                if config.source_date_epoch is not None and context.root.exists():
                    clamp_mtimes(context.root, config.source_date_epoch)
                extras = manifest.write_manifests(context)
            else:
                extras = []
            main = outputs.produce(context)
        # Whatever else is in staging ($OUTPUTDIR of the build scripts, split artifacts) is published too.
        others = sorted(p for p in context.staging.iterdir() if p not in main and p not in extras)
        signed: list[Path] = []
        if config.checksum and (main or others or extras):
            with step("write SHA256SUMS"):
                sums = checksum.write_checksums(config, [*main, *others, *extras], context.workspace)
                signed = [sums]
                if config.sign:
                    signed.append(checksum.sign_checksums(config, sums))
        link = _artifact_symlink(context, main[0]) if main else None
        artifacts = []
        for artifact in [*extras, *others, *main, *signed, *([link] if link else [])]:
            target = destination.parent / artifact.name
            publish(artifact, target, trash=context.workspace)
            artifacts.append(target)
        for stale in _stale_outputs(config, {a.name for a in artifacts}):
            remove_output(stale)
    # The main artifact first (BuildResult.path), then the others in the order they were published.
    ordered = [destination.parent / p.name for p in main]
    ordered += [a for a in artifacts if a not in ordered]
    logger.info("Wrote %s", ", ".join(str(a) for a in ordered) or "nothing (Format=none)")
    return BuildResult(config, ordered)


def sub_build(config: Config) -> Path:
    """The one way stages and verbs ask for another image (the default initrd, the default tools tree):
    build config, replacing an earlier output of it, and return its main artifact."""
    return build_image(config, force=1).path
