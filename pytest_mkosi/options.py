"""The plugin's options, read once per session into a typed object (`MkosiOptions.of(pytestconfig)`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagebuild.config import Overrides, parse_command_line
from imagebuild.errors import ImageBuildError


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("mkosi", "building and booting OS images (pytest-mkosi)")
    group.addoption("--mkosi-config", metavar="DIR", help="the mkosi configuration directory to build and test")
    group.addoption("--mkosi-args", metavar="ARGS", default="",
                    help="extra imagebuild options, e.g. \"--release=bookworm\" (they override the files)")
    group.addoption("--mkosi-rebuild", action="store_true", default=False,
                    help="build the image even when a cached one matches")
    group.addoption("--mkosi-cache-dir", metavar="DIR",
                    help="where built images are cached (default: ~/.cache/pytest-mkosi/images)")
    parser.addini("mkosi_config", "the mkosi configuration directory to build and test", default="")


@dataclass(frozen=True)
class MkosiOptions:
    """What the user asked of the plugin, validated once."""

    # The configuration directory (None: no --mkosi-config given; mkosi fixtures then cannot run).
    config_directory: Path | None
    # --mkosi-args as typed overrides of the files (settings by attribute name).
    overrides: Overrides
    rebuild: bool
    cache_directory: Path | None

    @classmethod
    def of(cls, pytestconfig: pytest.Config) -> MkosiOptions:
        """The session's options (read and checked on first use, then kept in the config's stash)."""
        cached = pytestconfig.stash.get(_KEY, None)
        if cached is None:
            cached = cls.read(pytestconfig)
            pytestconfig.stash[_KEY] = cached
        return cached

    @classmethod
    def read(cls, pytestconfig: pytest.Config) -> MkosiOptions:
        directory = pytestconfig.getoption("mkosi_config") or None
        if directory is None and pytestconfig.getini("mkosi_config"):
            # An ini value is relative to the ini file's directory, as pytest does for its own paths.
            base = pytestconfig.inipath.parent if pytestconfig.inipath else pytestconfig.rootpath
            directory = str(base / pytestconfig.getini("mkosi_config"))
        cache_dir = pytestconfig.getoption("mkosi_cache_dir")
        return cls(
            config_directory=Path(directory) if directory else None,
            overrides=_parse_args(pytestconfig.getoption("mkosi_args") or ""),
            rebuild=bool(pytestconfig.getoption("mkosi_rebuild")),
            cache_directory=Path(cache_dir) if cache_dir else None,
        )


_KEY = pytest.StashKey[MkosiOptions]()


def _parse_args(text: str) -> Overrides:
    """--mkosi-args holds imagebuild options; only settings are allowed there (no verb, no -C)."""
    try:
        args, overrides = parse_command_line([*shlex.split(text), "build"])
    except (ImageBuildError, ValueError) as e:
        raise pytest.UsageError(f"--mkosi-args={text!r}: {e}") from None
    if args.directory is not None:
        raise pytest.UsageError(f"--mkosi-args={text!r}: give the directory with --mkosi-config, not -C")
    return overrides


# -- machines: which runner boots the image, how long commands may take (the machines issue) ---------------

RUNNERS = ("auto", "nspawn", "qemu")


def add_machine_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("mkosi")
    group.addoption("--mkosi-runner", metavar="RUNNER", choices=RUNNERS, default=None,
                    help="what boots the image: nspawn (Format=directory), qemu (disk, uki, esp) or auto "
                         "(by the image's format; the default)")
    group.addoption("--mkosi-command-timeout", metavar="SECONDS", type=float, default=None,
                    help="how long a command in a machine may run before it is killed (default: 300)")
    parser.addini("mkosi_runner", "what boots the image: auto, nspawn or qemu", default="auto")


@dataclass(frozen=True)
class MachineOptions:
    runner: str  # "auto", "nspawn" or "qemu"
    command_timeout: float

    @classmethod
    def of(cls, pytestconfig: pytest.Config) -> MachineOptions:
        cached = pytestconfig.stash.get(_MACHINE_KEY, None)
        if cached is None:
            cached = cls.read(pytestconfig)
            pytestconfig.stash[_MACHINE_KEY] = cached
        return cached

    @classmethod
    def read(cls, pytestconfig: pytest.Config) -> MachineOptions:
        runner = pytestconfig.getoption("mkosi_runner") or pytestconfig.getini("mkosi_runner") or "auto"
        if runner not in RUNNERS:
            raise pytest.UsageError(f"mkosi_runner = {runner}: must be one of {', '.join(RUNNERS)}")
        timeout = pytestconfig.getoption("mkosi_command_timeout")
        if timeout is not None and timeout <= 0:
            raise pytest.UsageError(f"--mkosi-command-timeout={timeout:g}: must be a positive number of seconds")
        return cls(runner=runner, command_timeout=300.0 if timeout is None else timeout)


_MACHINE_KEY = pytest.StashKey[MachineOptions]()
