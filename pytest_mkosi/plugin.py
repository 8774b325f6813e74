"""The pytest plugin's hooks; the fixtures live in fixtures/, the options in options.py."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_mkosi import hostcheck, terminal
from pytest_mkosi.checks import pcr, reproducible
from pytest_mkosi.evidence.report import ALLOW_MARKER, Evidence
from pytest_mkosi.fixtures import fresh
from pytest_mkosi.fixtures.boot_time import boot_time_items
from pytest_mkosi.fixtures.fresh import mkosi_fresh_machine, mkosi_fresh_state
from pytest_mkosi.fixtures.images import (
    cell_configs,
    configs_of,
    image_cache,
    mkosi_cell,
    mkosi_config,
    mkosi_image,
    mkosi_images,
    mkosi_rebuild,
    session_cache,
)
from pytest_mkosi.fixtures.machines import mkosi_machine, mkosi_ssh
from pytest_mkosi.images import BuiltImage
from pytest_mkosi.matrix import (
    Cell,
    MarkerSettings,
    MatrixError,
    apply_markers,
    cell_id,
    cells,
    config_names,
    skip_reason,
)
from pytest_mkosi.options import (
    MachineOptions,
    MkosiOptions,
    add_evidence_options,
    add_machine_options,
    add_matrix_options,
    add_options,
)
from pytest_mkosi.runners import RunnerChoiceError, choose_runner

__all__ = ["mkosi_cell", "mkosi_config", "mkosi_fresh_machine", "mkosi_fresh_state", "mkosi_image", "mkosi_images",
           "mkosi_machine", "mkosi_rebuild", "mkosi_ssh"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_matrix_options(parser)  # first: --mkosi-config leads the group in --help
    add_options(parser)
    add_machine_options(parser)
    add_evidence_options(parser)


# ---- configurations as test parameters: markers, cells, cache pruning, image comparison ----------

MARKERS = (
    "mkosi(**settings): run only in the cells whose matrix values match (a setting that is no --mkosi-matrix "
    "axis overrides the files instead), e.g. @pytest.mark.mkosi(Format='disk')",
    "mkosi_skip(reason, **settings): skip the cells whose resolved settings all match",
    "mkosi_kvm: the test needs a working KVM; skipped where there is none",
    ALLOW_MARKER,
    fresh.MARKER,
)
# Fixtures that need a built image, and those that need a running machine.
IMAGE_FIXTURES = {"mkosi_images", "mkosi_image", "mkosi_rebuild", "mkosi_machine", "mkosi_ssh", "mkosi_fresh_machine"}
MACHINE_FIXTURES = {"mkosi_machine", "mkosi_ssh", "mkosi_fresh_machine"}
_SAW_CELLS = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    Evidence.of(config)  # bad evidence options are usage errors now, not at the first test
    config.pluginmanager.register(BootTimeCollection(), "mkosi-boot-time")
    config.pluginmanager.register(terminal.Relay(config), "mkosi-terminal")


def pytest_sessionstart(session: pytest.Session) -> None:
    # Bad options and configurations are usage errors before anything is collected, not one error per test.
    options = MkosiOptions.of(session.config)
    runner = MachineOptions.of(session.config).runner
    for cell in cells(options.config_directories, options.matrix):
        configs = configs_of(session.config, cell)
        if runner == "auto":
            continue  # a cell whose format boots nowhere skips its machine tests (_host_skip)
        try:
            choose_runner(runner, configs[-1])
        except RunnerChoiceError as e:
            raise pytest.UsageError(f"--mkosi-config={cell.directory}: {e}") from None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    # xdist: the workers judge --mkosi-refresh=always against the controller's start, so that one of
    # them builds an image and the others reuse it.
    node.workerinput["mkosi_session_started"] = MkosiOptions.of(node.config).session_started


def _markers(metafunc: pytest.Metafunc, name: str) -> list[MarkerSettings]:
    where = f"@pytest.mark.{name} on {metafunc.definition.nodeid}"
    found = []
    try:
        for mark in metafunc.definition.iter_markers(name):
            reason = str(mark.args[0]) if mark.args else str(mark.kwargs.get("reason", ""))
            kwargs = {k: v for k, v in mark.kwargs.items() if k != "reason"}
            found.append(MarkerSettings.of(kwargs, where, reason))
    except MatrixError as e:
        # Reported as this module's collection error, with the message alone.
        raise pytest.Collector.CollectError(str(e)) from None
    return found


def _host_skip(pytestconfig: pytest.Config, cell: Cell, fixtures: set[str], kvm: bool) -> str | None:
    configs = configs_of(pytestconfig, cell)
    if fixtures & IMAGE_FIXTURES and (reason := hostcheck.root_reason()):
        return reason
    if fixtures & MACHINE_FIXTURES:
        try:
            choose_runner(MachineOptions.of(pytestconfig).runner, configs[-1])
        except RunnerChoiceError as e:
            return str(e)
        if reason := hostcheck.machine_reason(configs[-1]):
            return reason
    if kvm and (reason := hostcheck.kvm_reason()):
        return reason
    if fixtures & IMAGE_FIXTURES:
        cache = image_cache(pytestconfig)
        for config in configs:
            # An image that is cached needs no mirror; only look when the mirror does not answer.
            if (reason := hostcheck.mirror_reason(config)) and cache.lookup(config) is None:
                return reason
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mkosi_cell" not in metafunc.fixturenames:
        return
    options = MkosiOptions.of(metafunc.config)
    if not options.config_directories:
        return  # mkosi_cell skips with "no --mkosi-config given"
    resolved = cell_configs(metafunc.config)
    names = config_names(options.config_directories)
    try:
        wanted = apply_markers(cells(options.config_directories, options.matrix), options.matrix,
                               _markers(metafunc, "mkosi"), lambda c: configs_of(metafunc.config, c)[-1])
    except MatrixError as e:
        raise pytest.Collector.CollectError(str(e)) from None
    skips = _markers(metafunc, "mkosi_skip")
    kvm = metafunc.definition.get_closest_marker("mkosi_kvm") is not None
    fixtures = set(metafunc.fixturenames)
    params = []
    for cell in wanted:
        main = resolved.main(cell)
        ident = cell_id(cell, main, names)
        marks: list[Any] = [pytest.mark.xdist_group(name=ident)]
        reason = skip_reason(main, skips) or _host_skip(metafunc.config, cell, fixtures, kvm)
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(cell, id=ident, marks=marks))
    if not params:
        params = [pytest.param(None, id="no-cell", marks=[pytest.mark.skip(
            reason="no cell of --mkosi-config x --mkosi-matrix matches this test's @pytest.mark.mkosi")])]
    metafunc.config.stash[_SAW_CELLS] = True
    metafunc.parametrize("mkosi_cell", params, indirect=True, scope="session")


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = session_cache(session.config)
    if cache is None and session.config.stash.get(_SAW_CELLS, False):
        cache = image_cache(session.config)  # an xdist controller: its workers used the cache
    if cache is None:
        return
    try:
        if getattr(session.config, "workerinput", None) is None:
            # Only the controller prunes (entries the workers still hold stay: they hold them locked).
            limit = MkosiOptions.of(session.config).cache_max
            removed = cache.prune(limit)
            if removed:
                terminal.say(session.config, f"pruned {len(removed)} least recently used cached image(s) to "
                                             f"keep {cache.root} under {limit / 1024**3:.1f}G")
    finally:
        cache.release_all()


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    if op == "==" and (pcr_lines := pcr.report(left, right)) is not None:
        return pcr_lines
    if op != "==" or not isinstance(left, BuiltImage) or not isinstance(right, BuiltImage):
        return None
    diffs = left.differences(right)
    if not diffs:
        return None
    return [f"{left.path} == {right.path}", *reproducible.report(diffs, left.path, right.path)]



@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--dist loadgroup with pytest >= 9.2: xdist 3.8 appends "@group" to `item._nodeid`, which pytest no
    longer reads (node ids became structured), so groups were silently ignored and a cell's tests ran on
    several workers. Append it the way this pytest stores node ids; a no-op where xdist's own works."""
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:
        return
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(groups)}")


# ---- evidence and gates: per-test journal/console/coredumps, badness, fresh boots, boot-time items ------

class BootTimeCollection:
    """A plugin object of its own: this module has a pytest_collection_modifyitems already (trylast)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        # First, so that -k and deselection see the boot-time[cell] items too.
        items.extend(boot_time_items(session))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    evidence = Evidence.of(item.config)
    tracked = evidence.tracked(item)
    # A machine the fresh machinery restores in this setup is not booted afresh first (fixtures/fresh.py).
    if tracked is None or not fresh.restores_before(item, tracked.machine):
        evidence.before_setup(item)
    result = yield
    Evidence.of(item.config).after_setup(item)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        result = yield
    except (KeyboardInterrupt, pytest.exit.Exception):
        raise
    except BaseException:
        Evidence.of(item.config).after_call(item, failed=True)
        raise
    Evidence.of(item.config).after_call(item, failed=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    terminal.attach(item.config, report)
    evidence = Evidence.of(item.config)
    evidence.on_report(item, report)
    evidence.pause(item, report)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    Evidence.of(terminalreporter.config).summary(terminalreporter)
