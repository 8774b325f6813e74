"""The project's own test setup."""

import os

import pytest

pytest_plugins = ["pytester"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests build and boot images: they need root")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
