"""The pytest plugin: command-line options and the session fixtures."""

from __future__ import annotations

import pytest

from pytest_mkosi.fixtures.image import mkosi_config, mkosi_image
from pytest_mkosi.fixtures.machine import mkosi_machine, mkosi_ssh

__all__ = ["mkosi_config", "mkosi_image", "mkosi_machine", "mkosi_ssh"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mkosi", "building and booting OS images (pytest-mkosi)")
    group.addoption("--mkosi-config", metavar="DIR", help="the mkosi configuration directory to build and test")
    group.addoption("--mkosi-args", metavar="ARGS", default="",
                    help="extra imagebuild options, e.g. \"--release=bookworm\" (they override the files)")
    group.addoption("--mkosi-rebuild", action="store_true", default=False,
                    help="build the image even when a cached one matches")
    group.addoption("--mkosi-cache-dir", metavar="DIR",
                    help="where built images are cached (default: ~/.cache/pytest-mkosi/images)")
    parser.addini("mkosi_config", "the mkosi configuration directory to build and test", default="")
