"""Install systemd-boot (or grub) into the image and prepare Secure Boot."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def install_bootloader(context: Context) -> None:
    return None
