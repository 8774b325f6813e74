"""shell: a shell (or the given command) in the image, in a container."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.verbs.nspawn_exec import exec_nspawn

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def run(args: Args, images: list[Config]) -> int:
    return exec_nspawn(args, images, boot=False)
