"""Prepare, build, post-install and finalize scripts, run isolated from the host."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.build.context import Context


def run_prepare_scripts_final(context: Context) -> None:
    return None


def prepare_build_overlay(context: Context) -> None:
    return None


def run_build_scripts(context: Context) -> None:
    return None


def install_build_output(context: Context) -> None:
    return None


def run_postinst_scripts(context: Context) -> None:
    return None


def run_finalize_scripts(context: Context) -> None:
    return None
