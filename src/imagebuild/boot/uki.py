"""Unified kernel images: kernel, initrd, os-release and command line joined by ukify."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def build_unified_kernel_images(context: Context) -> None:
    return None
