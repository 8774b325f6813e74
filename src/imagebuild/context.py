"""The Context carries one image build's config and workspace from stage to stage."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.config.enums import ConfigFeature
from imagebuild.log import logger
from imagebuild.tools.mounts import remove_tree, remove_tree_in_background
from imagebuild.tools.subvolumes import make_tree, on_btrfs

if TYPE_CHECKING:
    from imagebuild.config import Config

# Builds another image (the default initrd, the tools tree) and returns its main artifact. Lower layers are
# handed the pipeline's one (imagebuild.pipeline.subbuilds.sub_build) instead of importing the pipeline.
SubBuild = Callable[["Config"], Path]


def _no_sub_builds(config: Config) -> Path:
    raise RuntimeError(f"no sub-build of {config.output} possible outside the build pipeline")


@dataclass
class Context:
    config: Config
    workspace: Path
    package_cache: Path
    # The tools tree the build's tools come from (ToolsTree=), None to use the host's.
    tools_tree: Path | None = None
    # --debug-shell: open a shell in the image where a script failed.
    debug_shell: bool = False
    # The arguments after `build` on the command line, passed on to the build scripts.
    build_script_arguments: tuple[str, ...] = ()
    # Whether the install cache (pipeline/install_cache.py) may be used; --no-install-cache turns it off.
    install_cache: bool = True
    # How stages ask for an image of their own (the default initrd): the pipeline's sub_build.
    sub_build: SubBuild = _no_sub_builds

    def package_manager_tree(self) -> Path | None:
        """The merged package manager trees of this build (PackageManagerTrees=), None when there are none."""
        tree = self.workspace / "pkgmngr"
        return tree if tree.is_dir() else None

    @property
    def root(self) -> Path:
        """The image's root file system as it is being built."""
        return self.workspace / "root"

    @property
    def staging(self) -> Path:
        """Finished artifacts wait here until they are moved into the output directory."""
        return self.workspace / "staging"

    @property
    def artifacts(self) -> Path:
        """Intermediate products that are not the image's root: kernels, initrds, UKIs, repart's JSON."""
        return self.workspace / "artifacts"

    @property
    def build_overlay(self) -> Path:
        """The upper directory of the overlay that build packages and build scripts write to."""
        return self.workspace / "build-overlay"

    @property
    def install_dir(self) -> Path:
        """$DESTDIR of the build scripts: copied into the image after they ran."""
        return self.workspace / "dest"

    @property
    def packages_dir(self) -> Path:
        """$PACKAGEDIR: packages the build scripts produce."""
        return self.workspace / "packages"


def use_subvolume_root(config: Config, workspace: Path) -> bool:
    """UseSubvolumes=: the image root starts as a btrfs subvolume (as in mkosi v22, not with Overlay=: an
    overlay's upper directory cannot be one); otherwise stages create it as a plain directory."""
    return config.use_subvolumes != ConfigFeature.disabled and not config.overlay and on_btrfs(workspace)


class Workspace:
    """A fresh workspace directory for one build, removed afterwards (kept on failure if asked)."""

    def __init__(self, config: Config, *, keep_on_failure: bool = False, sub_build: SubBuild | None = None) -> None:
        self.config = config
        self.keep_on_failure = keep_on_failure
        self.sub_build = sub_build
        self.path: Path | None = None

    def __enter__(self) -> Context:
        from imagebuild.tools.tools_tree import tools_tree_for

        # Before the workspace exists: building a default tools tree is a build of its own.
        tools_tree = tools_tree_for(self.config, self.sub_build)
        parent = paths.workspace_parent(self.config)
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="imagebuild-workspace-", dir=parent))
        context = Context(self.config, self.path, paths.package_cache_directory(self.config), tools_tree)
        if self.sub_build is not None:
            context.sub_build = self.sub_build
        context.staging.mkdir()
        context.artifacts.mkdir()
        if use_subvolume_root(self.config, self.path):
            make_tree(context.root, self.config.use_subvolumes)
        return context

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.path is not None
        if kind is not None and self.keep_on_failure:
            logger.warning("workspace kept for debugging: %s", self.path)
            return
        if kind is not None:
            # A failed or interrupted build leaves nothing behind when it returns (the caller may be exiting).
            remove_tree(self.path)
            return
        remove_tree_in_background(self.path)
