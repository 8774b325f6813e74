"""journalctl: the journal of the built image (journalctl --root/--image; extra arguments passed on)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagebuild.verbs.offline_journal import exec_offline

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def run(args: Args, images: list[Config]) -> int:
    return exec_offline("journalctl", args, images)
