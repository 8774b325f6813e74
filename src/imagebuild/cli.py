"""The imagebuild command: mkosi's verbs on top of the config loader and the build pipeline."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from imagebuild import __version__
from imagebuild.config import (
    Args,
    Config,
    Overrides,
    Verb,
    format_documentation,
    format_help,
    format_json,
    format_summary,
    load_images,
    parse_command_line,
)
from imagebuild.errors import ImageBuildError
from imagebuild.log import logger, setup_logging


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # A kill is handled like Ctrl-C: stages unwind and the workspace is removed.
    raise KeyboardInterrupt


def _need_root(verb: Verb) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError(f"'{verb}' needs root: run it with sudo or as root")


def _main_image(images: list[Config]) -> Config:
    return images[-1]


def _build_if_needed(args: Args, images: list[Config]) -> None:
    """shell/boot build the image first when it is missing (or always, with -f)."""
    from imagebuild.build import build_image
    from imagebuild.build.pipeline import output_path

    for config in images:
        if args.force or not output_path(config).exists():
            build_image(config, force=args.force, keep_workspace_on_failure=args.debug_workspace)


def verb_summary(args: Args, images: list[Config]) -> int:
    print(format_json(images) if args.json else format_summary(args, images))
    return 0


def verb_build(args: Args, images: list[Config]) -> int:
    from imagebuild.build import build_image
    from imagebuild.build.pipeline import preflight

    for config in images:
        preflight(config)
    _need_root(args.verb)
    for config in images:
        build_image(config, force=args.force, keep_workspace_on_failure=args.debug_workspace)
    return 0


def _exec_nspawn(args: Args, images: list[Config], *, boot: bool) -> int:
    from imagebuild.build.pipeline import output_path
    from imagebuild.launch.nspawn import NspawnOptions, nspawn_command

    _need_root(args.verb)
    _build_if_needed(args, images)
    config = _main_image(images)
    if str(config.format) != "directory":
        raise ImageBuildError(f"'{args.verb}' needs Format=directory for now (this image is Format={config.format})")
    argv = nspawn_command(config, output_path(config), NspawnOptions(boot=boot), args.cmdline)
    logger.debug("+ %s", " ".join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def verb_shell(args: Args, images: list[Config]) -> int:
    return _exec_nspawn(args, images, boot=False)


def verb_boot(args: Args, images: list[Config]) -> int:
    return _exec_nspawn(args, images, boot=True)


def verb_clean(args: Args, images: list[Config]) -> int:
    import shutil

    from imagebuild import paths
    from imagebuild.build.pipeline import output_path

    for config in images:
        path = output_path(config)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        if args.force >= 2:
            shutil.rmtree(paths.package_cache_directory(config), ignore_errors=True)
    return 0


VERBS_WITHOUT_CONFIG: dict[Verb, Callable[[Args], int]] = {
    Verb.help: lambda args: print(format_help()) or 0,
    Verb.documentation: lambda args: print(format_documentation(args.doc_format)) or 0,
}

VERBS: dict[Verb, Callable[[Args, list[Config]], int]] = {
    Verb.summary: verb_summary,
    Verb.build: verb_build,
    Verb.shell: verb_shell,
    Verb.boot: verb_boot,
    Verb.clean: verb_clean,
}


def run_verb(args: Args, overrides: Overrides) -> int:
    if args.version:
        print(f"imagebuild {__version__}")
        return 0
    if args.verb in VERBS_WITHOUT_CONFIG:
        return VERBS_WITHOUT_CONFIG[args.verb](args)
    handler = VERBS.get(args.verb)
    if handler is None:
        raise ImageBuildError(f"not supported yet: the '{args.verb}' verb")
    images = load_images(args, overrides)
    return handler(args, images)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging(debug="--debug" in argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        args, overrides = parse_command_line(argv)
        setup_logging(debug=args.debug)
        return run_verb(args, overrides)
    except ImageBuildError as e:
        print(f"imagebuild: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `imagebuild summary | head`: the reader has gone, which is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("imagebuild: interrupted; nothing was written to the output directory", file=sys.stderr)
        return 130
