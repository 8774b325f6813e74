"""coredumpctl: the core dumps recorded in the built image (coredumpctl --root/--image; arguments passed on)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.verbs.offline_journal import exec_offline

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def run(args: Args, images: list[Config]) -> int:
    return exec_offline("coredumpctl", args, images)
