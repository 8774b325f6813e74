"""The pytest plugin's hooks; the fixtures live in fixtures/, the options in options.py."""

from __future__ import annotations

import pytest

from imagebuild.errors import ImageBuildError
from pytest_mkosi.fixtures.images import mkosi_config, mkosi_image
from pytest_mkosi.fixtures.machines import mkosi_machine, mkosi_ssh
from pytest_mkosi.images import resolve_configs
from pytest_mkosi.options import MachineOptions, MkosiOptions, add_machine_options, add_options
from pytest_mkosi.runners import RunnerChoiceError, choose_runner

__all__ = ["mkosi_config", "mkosi_image", "mkosi_machine", "mkosi_ssh"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    add_machine_options(parser)


# -- machines: without a config the mkosi tests skip; a bad config or runner stops the session up front ---

NO_CONFIG = "no --mkosi-config given (pass --mkosi-config=DIR or set mkosi_config in the ini file)"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if MkosiOptions.of(config).config_directory is not None:
        return
    skip = pytest.mark.skip(reason=NO_CONFIG)
    for item in items:
        if any(name.startswith("mkosi_") for name in getattr(item, "fixturenames", ())):
            item.add_marker(skip)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Checks that can fail run before any build or boot: the config parses, the runner fits its format."""
    options = MkosiOptions.of(session.config)
    if options.config_directory is None:
        return
    try:
        configs = resolve_configs(options.config_directory, options.overrides)
    except ImageBuildError as e:
        raise pytest.UsageError(f"--mkosi-config={options.config_directory}: {e}") from None
    try:
        choose_runner(MachineOptions.of(session.config).runner, configs[-1])
    except RunnerChoiceError as e:
        raise pytest.UsageError(f"--mkosi-config={options.config_directory}: {e}") from None
