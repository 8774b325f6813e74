"""The pytest plugin's hooks; the fixtures live in fixtures/, the options in options.py."""

from __future__ import annotations

import pytest

from pytest_mkosi.fixtures.images import mkosi_config, mkosi_image
from pytest_mkosi.fixtures.machines import mkosi_machine, mkosi_ssh
from pytest_mkosi.options import add_options

__all__ = ["mkosi_config", "mkosi_image", "mkosi_machine", "mkosi_ssh"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
