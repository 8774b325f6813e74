"""systemd-sysusers, systemd-tmpfiles, systemctl preset-all, depmod and systemd-hwdb on the image."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def run_sysusers(context: Context) -> None:
    return None


def run_tmpfiles(context: Context) -> None:
    return None


def run_preset_all(context: Context) -> None:
    return None


def run_depmod(context: Context) -> None:
    return None


def run_hwdb(context: Context) -> None:
    return None
