"""The plugin's options, read once per session into a typed object (`MkosiOptions.of(pytestconfig)`)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from imagebuild.config import Overrides, parse_command_line
from imagebuild.config.errors import ValueProblem
from imagebuild.config.values import parse_bytes
from imagebuild.errors import ImageBuildError
from pytest_mkosi.images import REFRESH_CHOICES
from pytest_mkosi.matrix import Axis, MatrixError, check_axes, parse_axis

_Options = TypeVar("_Options")


def _read_once(pytestconfig: pytest.Config, key: pytest.StashKey[_Options],
               read: Callable[[pytest.Config], _Options]) -> _Options:
    """The session's options of one kind: read and checked on first use, then kept in the config's stash."""
    if key not in pytestconfig.stash:
        pytestconfig.stash[key] = read(pytestconfig)
    return pytestconfig.stash[key]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("mkosi", "building and booting OS images (pytest-mkosi)")
    group.addoption("--mkosi-args", metavar="ARGS", default="",
                    help="extra imagebuild options, e.g. \"--release=bookworm\" (they override the files)")
    group.addoption("--mkosi-rebuild", action="store_true", default=False,
                    help="build the image even when a cached one matches")
    group.addoption("--mkosi-cache-dir", metavar="DIR",
                    help="where built images are cached (default: ~/.cache/pytest-mkosi/images)")


# ---- configurations as test parameters (matrix, cache size and refresh) -----------------------------

def add_matrix_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("mkosi", "building and booting OS images (pytest-mkosi)")
    group.addoption("--mkosi-config", metavar="DIR", action="append", default=[],
                    help="an mkosi configuration directory to build and test; give it several times to run "
                         "every mkosi test once per configuration")
    group.addoption("--mkosi-matrix", metavar="SETTING=V1,V2", action="append", default=[],
                    help="run every mkosi test once per value of an mkosi.conf setting (e.g. Release=bookworm,"
                         "trixie); several give the cross product")
    group.addoption("--mkosi-cache-max", metavar="SIZE", default="20G",
                    help="prune least recently used cached images beyond this size at the end (default 20G)")
    group.addoption("--mkosi-refresh", choices=REFRESH_CHOICES, default="daily",
                    help="rebuild cached images older than a day (daily, the default), built before this "
                         "session (always) or never")
    parser.addini("mkosi_config", "mkosi configuration directories to build and test (relative to the ini file)",
                  type="paths", default=[])


def _directories(pytestconfig: pytest.Config) -> tuple[Path, ...]:
    given = [Path(d) for d in pytestconfig.getoption("mkosi_config") or []]
    if not given:
        # The ini's paths are relative to the ini file's directory (pytest resolves type="paths" so).
        given = [Path(p) for p in pytestconfig.getini("mkosi_config") or []]
    for d in given:
        if not d.is_dir():
            raise pytest.UsageError(f"--mkosi-config={d}: not a directory")
    return tuple(d.absolute() for d in given)


def _axes(pytestconfig: pytest.Config) -> tuple[Axis, ...]:
    try:
        axes = tuple(parse_axis(text) for text in pytestconfig.getoption("mkosi_matrix") or [])
        check_axes(axes)
    except MatrixError as e:
        raise pytest.UsageError(str(e)) from None
    return axes


def _cache_max(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueProblem as e:
        raise pytest.UsageError(f"--mkosi-cache-max={text}: {e.describe()}") from None


def _session_started(pytestconfig: pytest.Config) -> float:
    # xdist workers use the controller's start (see plugin.pytest_configure_node).
    workerinput = getattr(pytestconfig, "workerinput", None)
    if workerinput and "mkosi_session_started" in workerinput:
        return float(workerinput["mkosi_session_started"])
    return time.time()

# ---- end of the matrix block --------------------------------------------------------------------


@dataclass(frozen=True)
class MkosiOptions:
    """What the user asked of the plugin, validated once."""

    # The configuration directories (empty: no --mkosi-config given; mkosi tests are then skipped).
    config_directories: tuple[Path, ...]
    # --mkosi-args as typed overrides of the files (settings by attribute name).
    overrides: Overrides
    rebuild: bool
    cache_directory: Path | None
    matrix: tuple[Axis, ...] = ()
    cache_max: int = 20 * 1024**3
    refresh: str = "daily"
    session_started: float = field(default_factory=time.time)

    @property
    def config_directory(self) -> Path | None:
        """The first configuration (for code that handles one)."""
        return self.config_directories[0] if self.config_directories else None

    @classmethod
    def of(cls, pytestconfig: pytest.Config) -> MkosiOptions:
        """The session's options (read and checked on first use, then kept in the config's stash)."""
        return _read_once(pytestconfig, _KEY, cls.read)

    @classmethod
    def read(cls, pytestconfig: pytest.Config) -> MkosiOptions:
        cache_dir = pytestconfig.getoption("mkosi_cache_dir")
        return cls(
            config_directories=_directories(pytestconfig),
            overrides=_parse_args(pytestconfig.getoption("mkosi_args") or ""),
            rebuild=bool(pytestconfig.getoption("mkosi_rebuild")),
            cache_directory=Path(cache_dir) if cache_dir else None,
            matrix=_axes(pytestconfig),
            cache_max=_cache_max(pytestconfig.getoption("mkosi_cache_max") or "20G"),
            refresh=pytestconfig.getoption("mkosi_refresh") or "daily",
            session_started=_session_started(pytestconfig),
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
        return _read_once(pytestconfig, _MACHINE_KEY, cls.read)

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


# -- evidence and gates: what is collected per test, the badness gate, boot-time baselines, debugging ------

BADNESS_MODES = ("fail", "warn", "off")
ARTIFACTS_WHEN = ("failure", "always")


def add_evidence_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("mkosi")
    group.addoption("--mkosi-artifacts", metavar="DIR", default=None,
                    help="where each test's journal, console, coredumps and failed units are written, one "
                         "folder per test (default: .pytest-mkosi/artifacts in the rootdir)")
    group.addoption("--mkosi-artifacts-on", choices=ARTIFACTS_WHEN, default="failure",
                    help="write a test's artifacts when it fails (the default) or always")
    group.addoption("--mkosi-journal-lines", metavar="N", type=int, default=100,
                    help="how many journal lines a failing test's report shows (default 100)")
    group.addoption("--mkosi-badness", choices=BADNESS_MODES, default="fail",
                    help="failed or crashed units, coredumps, kernel trouble, emergency mode in the journal or "
                         "console during a test (or the boot): fail the test (the default), warn, or off")
    group.addoption("--mkosi-boot-baseline", metavar="FILE", default=None,
                    help="compare each cell's boot timings with this file's: a slower boot fails boot-time[cell]")
    group.addoption("--mkosi-boot-tolerance", metavar="FRACTION", type=float, default=0.25,
                    help="how much slower than the baseline a boot phase may be (default 0.25: 25%%)")
    group.addoption("--mkosi-boot-runs", metavar="N", type=int, default=1,
                    help="boots per cell whose median is compared with the baseline (default 1)")
    group.addoption("--mkosi-update-baseline", action="store_true", default=False,
                    help="write each cell's boot timings (the median of --mkosi-boot-runs boots) to "
                         "--mkosi-boot-baseline instead of comparing")
    group.addoption("--mkosi-keep-on-failure", action="store_true", default=False,
                    help="when a test failed, leave the session's machines running after pytest ends and say "
                         "how to reach and stop them")
    group.addoption("--mkosi-pause-on-failure", action="store_true", default=False,
                    help="at the first failure, print how to reach the machine and wait for Enter (on a tty)")
    parser.addini("mkosi_allow", "journal/console badness allowed in every test: unit names, rule names or "
                  "regular expressions, one a line", type="linelist", default=[])


@dataclass(frozen=True)
class EvidenceOptions:
    artifacts: Path
    artifacts_always: bool
    journal_lines: int
    badness: str  # "fail", "warn" or "off"
    allow: tuple[str, ...]
    boot_baseline: Path | None
    boot_tolerance: float
    boot_runs: int
    update_baseline: bool
    keep_on_failure: bool
    pause_on_failure: bool

    @classmethod
    def of(cls, pytestconfig: pytest.Config) -> EvidenceOptions:
        return _read_once(pytestconfig, _EVIDENCE_KEY, cls.read)

    @classmethod
    def read(cls, pytestconfig: pytest.Config) -> EvidenceOptions:
        get = pytestconfig.getoption
        artifacts = get("mkosi_artifacts")
        baseline = get("mkosi_boot_baseline")
        tolerance, runs, lines = get("mkosi_boot_tolerance"), get("mkosi_boot_runs"), get("mkosi_journal_lines")
        if tolerance < 0:
            raise pytest.UsageError(f"--mkosi-boot-tolerance={tolerance:g}: must be 0 or more (0.25 is 25%)")
        if runs < 1:
            raise pytest.UsageError(f"--mkosi-boot-runs={runs}: must be at least 1")
        if lines < 0:
            raise pytest.UsageError(f"--mkosi-journal-lines={lines}: must be 0 or more")
        update = bool(get("mkosi_update_baseline"))
        if update and not baseline:
            raise pytest.UsageError("--mkosi-update-baseline needs --mkosi-boot-baseline=FILE: the file to write")
        return cls(
            artifacts=Path(artifacts).absolute() if artifacts else pytestconfig.rootpath / ".pytest-mkosi/artifacts",
            artifacts_always=get("mkosi_artifacts_on") == "always",
            journal_lines=lines,
            badness=get("mkosi_badness") or "fail",
            allow=tuple(line.strip() for line in pytestconfig.getini("mkosi_allow") if line.strip()),
            boot_baseline=Path(baseline).absolute() if baseline else None,
            boot_tolerance=tolerance,
            boot_runs=runs,
            update_baseline=update,
            keep_on_failure=bool(get("mkosi_keep_on_failure")),
            pause_on_failure=bool(get("mkosi_pause_on_failure")),
        )


_EVIDENCE_KEY = pytest.StashKey[EvidenceOptions]()
