"""The imagebuild command: mkosi's verbs on top of the config loader and the build pipeline."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from imagebuild import __version__
from imagebuild.config import Args, Overrides, load_images, parse_command_line
from imagebuild.errors import ImageBuildError
from imagebuild.log import setup_logging
from imagebuild.tools.search_paths import extra_search_paths


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # A kill is handled like Ctrl-C: stages unwind and the workspace is removed.
    raise KeyboardInterrupt


def run_verb(args: Args, overrides: Overrides) -> int:
    if args.version:
        print(f"imagebuild {__version__}")
        return 0
    from imagebuild import verbs

    module = verbs.module_for(args.verb)
    images = load_images(args, overrides) if getattr(module, "NEEDS_CONFIG", True) else []
    # ExtraSearchPaths= of the last image, for every verb (as mkosi v22); each build adds its own.
    with extra_search_paths(images[-1] if images else None):
        status: int = module.run(args, images)
    return status


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
