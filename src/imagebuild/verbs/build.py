"""build: build every image of the configuration, in dependency order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.pipeline import build_image
from imagebuild.pipeline.pipeline import preflight
from imagebuild.verbs import need_root
from imagebuild.verbs.bump import bump_version_file, current_version, version_directory

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def run(args: Args, images: list[Config]) -> int:
    # Every image is checked before the first one is built, so a mistake in the last fails at once.
    for config in images:
        preflight(config)
    need_root(args.verb)
    if args.auto_bump:
        current_version(version_directory(args))  # -B without mkosi.version fails before building
    for config in images:
        build_image(config, force=args.force, keep_workspace_on_failure=args.debug_workspace,
                    debug_shell=args.debug_shell, build_script_arguments=tuple(args.cmdline),
                    use_install_cache=not args.no_install_cache)
    if args.auto_bump:
        # -B: the next build gets the next version.
        bump_version_file(version_directory(args))
    return 0
