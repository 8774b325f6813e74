"""First-boot settings written into the image at build time (Hostname=, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def configure_firstboot(context: Context) -> None:
    configure_hostname(context)


def configure_hostname(context: Context) -> None:
    hostname = context.config.hostname
    if not hostname:
        return
    etc = context.root / "etc"
    etc.mkdir(exist_ok=True)
    target = etc / "hostname"
    # A symlink here (hermetic /etc setups) must not make us write outside the image.
    target.unlink(missing_ok=True)
    target.write_text(hostname + "\n")
