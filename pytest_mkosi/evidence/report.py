"""The evidence as pytest sees it: which tests have a machine, the gates (badness, a machine that died), fresh boots,
report sections, artifacts and junit properties. plugin.py's hooks call these; the work is in the pure modules."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pytest

import imagebuild
from pytest_mkosi.evidence import artifacts, badness, sections
from pytest_mkosi.evidence.boottime import BootTimings
from pytest_mkosi.evidence.collect import Boot, Slice, Watch
from pytest_mkosi.evidence.kept import Kept, keep
from pytest_mkosi.fixtures.images import cell_ident
from pytest_mkosi.images import BuiltImage
from pytest_mkosi.machine import Machine
from pytest_mkosi.matrix import Cell
from pytest_mkosi.options import EvidenceOptions

ALLOW_MARKER = ("mkosi_allow(*patterns, reason=...): badness this test expects (unit names such as "
                "'crasher.service', rule names such as 'coredump', or regular expressions over the entry's text)")
MKOSI_FIXTURES = {"mkosi_cell", "mkosi_config", "mkosi_images", "mkosi_image", "mkosi_rebuild", "mkosi_machine",
                  "mkosi_ssh", "mkosi_fresh_machine"}

_SLICE = pytest.StashKey[Slice]()
_HITS = pytest.StashKey[list[badness.Hit]]()
_BOOT = pytest.StashKey[Boot]()


class MkosiBadnessWarning(pytest.PytestWarning):
    """Badness in a machine's journal or console under --mkosi-badness=warn."""


@dataclass
class Tracked:
    """A session machine and its evidence."""

    cell: Cell
    ident: str
    machine: Machine
    image: BuiltImage
    watch: Watch


@dataclass
class Evidence:
    """The session's evidence state (one per pytest config)."""

    options: EvidenceOptions
    machines: dict[Cell, Tracked] = field(default_factory=dict)
    fresh_boots: list[tuple[str, str]] = field(default_factory=list)  # (test id, why)
    failures: int = 0
    paused: bool = False
    kept: list[Kept] = field(default_factory=list)
    not_kept: list[str] = field(default_factory=list)  # machines whose runner cannot outlive the session
    # Each cell's boots so far (for boot-time[cell]): the accelerator and the timings.
    boot_timings: dict[Cell, tuple[str | None, list[BootTimings]]] = field(default_factory=dict)

    @classmethod
    def of(cls, config: pytest.Config) -> Evidence:
        found = config.stash.get(_KEY, None)
        if found is None:
            found = cls(EvidenceOptions.of(config))
            config.stash[_KEY] = found
        return found

    # -- machines ------------------------------------------------------------------------------------

    def track(self, cell: Cell, ident: str, machine: Machine, image: BuiltImage) -> Tracked:
        tracked = Tracked(cell, ident, machine, image, Watch(machine))
        self.machines[cell] = tracked
        return tracked

    def release(self, tracked: Tracked) -> bool:
        """At the machine's end: True when it is to be kept running (--mkosi-keep-on-failure after a failure)."""
        self.machines.pop(tracked.cell, None)
        if self.options.keep_on_failure and self.failures and tracked.machine.is_running:
            if not tracked.machine.runner.can_outlive_session:
                self.not_kept.append(tracked.machine.name)
                return False
            self.kept.append(keep(tracked.machine, tracked.cell.directory))
            return True
        return False

    def saved(self, machine: Machine) -> None:
        """fixtures/fresh.py saved `machine` for fresh tests."""
        for tracked in self.machines.values():
            if tracked.machine is machine:
                tracked.watch.saved()

    def restored(self, machine: Machine) -> None:
        """fixtures/fresh.py restored `machine`: its evidence starts afresh, in the boot it was saved in."""
        for tracked in self.machines.values():
            if tracked.machine is machine:
                tracked.watch.restored()

    def tracked(self, item: pytest.Item) -> Tracked | None:
        if "mkosi_machine" not in getattr(item, "fixturenames", ()):
            return None
        cell = getattr(getattr(item, "callspec", None), "params", {}).get("mkosi_cell")
        return self.machines.get(cell) if isinstance(cell, Cell) else None

    # -- the phases of a test ------------------------------------------------------------------------

    def before_setup(self, item: pytest.Item) -> None:
        """A machine that died (or was powered off) in an earlier test boots afresh for this one."""
        tracked = self.tracked(item)
        if tracked is None or tracked.machine.is_running:
            return
        why = "powered off by a test" if tracked.machine.powered_off_by_test else "died"
        tracked.watch.before_boot()
        tracked.machine.start()
        self.fresh_boots.append((item.nodeid, f"{tracked.machine.name} {why}"))

    def after_setup(self, item: pytest.Item) -> None:
        """junit properties; the boot's badness fails the setup of the first test of each boot."""
        if not MKOSI_FIXTURES & set(getattr(item, "fixturenames", ())):
            return
        tracked = self.tracked(item)
        if tracked is None:
            item.user_properties.extend(_image_properties(item))
            return
        if tracked.watch.boot_pending:
            boot = tracked.watch.collect_boot(timeout=tracked.machine.boot_timeout)
            item.stash[_BOOT] = boot
            if boot.timings is not None:
                accelerator = tracked.machine.runner.accelerator
                self.boot_timings.setdefault(tracked.cell, (accelerator, []))[1].append(boot.timings)
        current = tracked.watch.current_boot
        assert current is not None  # collected above
        boot = current
        for name, value in junit_properties(tracked, boot):
            item.user_properties.append((name, value))
        if _BOOT in item.stash and self.options.badness != "off":
            hits = badness.unexpected(boot.slice.hits(), self.allowances(None))
            item.stash[_HITS] = hits
            self._judge(item, hits, f"the boot of {tracked.machine.name} ({tracked.ident})")

    def after_call(self, item: pytest.Item, *, failed: bool) -> None:
        """Collect the test's slice; a passing test fails on badness or on a machine that died under it."""
        tracked = self.tracked(item)
        if tracked is None or tracked.watch.boot_pending:
            return
        found = tracked.watch.collect()
        item.stash[_SLICE] = found
        if found.died is not None and not found.on_purpose and tracked.machine.is_running:
            tracked.machine.runner.power_off_hard()  # hung: the next test boots it afresh
        hits = badness.unexpected(found.hits(), self.allowances(item)) if self.options.badness != "off" else []
        item.stash[_HITS] = hits
        if failed:
            return
        if found.died is not None and not found.on_purpose:
            pytest.fail(f"{tracked.machine.name} died during this test ({found.died}); the console's last lines "
                        "are below (mkosi machine)", pytrace=False)
        self._judge(item, hits, "this test")

    def _judge(self, item: pytest.Item, hits: list[badness.Hit], what: str) -> None:
        if not hits:
            return
        message = (f"badness in the journal or console during {what}:\n{sections.hits_text(hits)}\n"
                   "(expected? @pytest.mark.mkosi_allow(pattern, reason=...) or mkosi_allow in the ini file)")
        if self.options.badness == "fail":
            pytest.fail(message, pytrace=False)
        item.warn(MkosiBadnessWarning(message))

    def allowances(self, item: pytest.Item | None) -> list[badness.Allowance]:
        allowed = [badness.Allowance(p, "mkosi_allow in the ini file") for p in self.options.allow]
        if item is not None:
            for mark in item.iter_markers("mkosi_allow"):
                reason = str(mark.kwargs.get("reason", ""))
                allowed += [badness.Allowance(str(pattern), reason) for pattern in mark.args]
        return allowed

    # -- the report ----------------------------------------------------------------------------------

    def on_report(self, item: pytest.Item, report: pytest.TestReport) -> None:
        if report.when == "teardown" or (report.when == "setup" and not report.failed):
            return
        found = item.stash.get(_SLICE, None)
        boot = item.stash.get(_BOOT, None)
        if found is None and boot is not None:
            found = boot.slice
        if report.failed:
            self.failures += 1
        if found is None:
            return
        hits = item.stash.get(_HITS, [])
        if report.failed:
            for title, text in sections.sections(found, journal_lines=self.options.journal_lines, hits=hits):
                report.sections.append((title, text))
        if report.failed or self.options.artifacts_always:
            directory = artifacts.test_directory(self.options.artifacts, item.nodeid)
            written = artifacts.write_slice(directory, found) if _SLICE in item.stash else {}
            tracked = self.tracked(item)
            if boot is None and report.failed and tracked is not None:
                boot = tracked.watch.current_boot  # its chart and timings: the failure may be the boot's doing
            if boot is not None:
                written.update(artifacts.write_boot(directory, boot))
            item.user_properties.append(("mkosi_artifacts", str(directory)))
            for kind, path in sorted(written.items()):
                item.user_properties.append((f"mkosi_artifact_{kind}", str(path)))
            _html_extras(item, report, written.get("boot_chart"))

    def pause(self, item: pytest.Item, report: pytest.TestReport) -> None:
        """--mkosi-pause-on-failure: at the first failure, say how to reach the machine and wait for Enter."""
        if not (self.options.pause_on_failure and report.failed and not self.paused):
            return
        tracked = self.tracked(item)
        if tracked is None or not tracked.machine.is_running:
            return
        self.paused = True
        capture = item.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            out = sys.__stderr__ or sys.stderr
            out.write(f"\npytest-mkosi: {item.nodeid} failed; {tracked.machine.name} is still running. Reach it "
                      f"with:\n    {tracked.machine.ssh_command()}\n")
            terminal = None if hasattr(item.config, "workerinput") else _open_terminal()
            if terminal is None:
                out.write("pytest-mkosi: no terminal to wait on: not pausing (--mkosi-pause-on-failure)\n")
                return
            with terminal:
                out.write("pytest-mkosi: press Enter to continue the tests ")
                out.flush()
                terminal.readline()

    def summary(self, reporter: pytest.TerminalReporter) -> None:
        if self.fresh_boots:
            reporter.write_sep("-", f"pytest-mkosi: {len(self.fresh_boots)} fresh boot(s) of a machine that was off")
            for test, why in self.fresh_boots:
                reporter.write_line(f"{test}: {why}")
        for name in self.not_kept:
            reporter.write_line(f"pytest-mkosi: --mkosi-keep-on-failure: {name} was stopped: its runner cannot "
                                "leave it running after pytest ends; --mkosi-pause-on-failure waits at the failure")
        for machine in self.kept:
            reporter.write_sep("-", f"pytest-mkosi: kept {machine.name} running (--mkosi-keep-on-failure)")
            for line in machine.lines():
                reporter.write_line(line)


_KEY = pytest.StashKey[Evidence]()


def junit_properties(tracked: Tracked, boot: Boot) -> list[tuple[str, str]]:
    runner = tracked.machine.runner
    found = [
        ("mkosi_config", str(tracked.cell.directory)),
        ("mkosi_cell", tracked.ident),
        ("mkosi_image_digest", tracked.image.key),
        ("imagebuild_version", imagebuild.__version__),
        ("mkosi_runner", runner.kind),
        ("mkosi_accelerator", runner.accelerator or "none"),
        ("mkosi_boot", str(boot.number)),
    ]
    if tracked.watch.restores:
        found.append(("mkosi_restores", str(tracked.watch.restores)))
    if runner.stalled_boots:
        found.append(("mkosi_stalled_boots", str(runner.stalled_boots)))
    if runner.restore_fallbacks:
        found.append(("mkosi_restore_fallbacks", str(runner.restore_fallbacks)))
    if boot.timings is not None:
        found += [(f"mkosi_boot_{phase}", f"{seconds:.3f}") for phase, seconds in boot.timings.as_dict().items()]
    elif boot.timing_error:
        found.append(("mkosi_boot_timings_error", boot.timing_error))
    return found


def _image_properties(item: pytest.Item) -> list[tuple[str, str]]:
    """What a test that uses mkosi fixtures but no machine records: its cell and image."""
    funcargs = getattr(item, "funcargs", {})
    cell = funcargs.get("mkosi_cell")
    if not isinstance(cell, Cell):
        return []
    found = [("mkosi_config", str(cell.directory)), ("mkosi_cell", cell_ident(item.config, cell)),
             ("imagebuild_version", imagebuild.__version__)]
    image = funcargs.get("mkosi_image")
    if isinstance(image, BuiltImage):
        found.append(("mkosi_image_digest", image.key))
    return found


def _html_extras(item: pytest.Item, report: pytest.TestReport, chart: Path | None) -> None:
    """The boot chart in pytest-html's report, when pytest-html is there."""
    if chart is None or not item.config.pluginmanager.hasplugin("html"):
        return
    try:
        from pytest_html import extras  # type: ignore[import-not-found]
    except ImportError:
        return
    report.extras = [*getattr(report, "extras", []), extras.html(chart.read_text())]  # type: ignore[attr-defined]


def _open_terminal() -> TextIO | None:
    """The session's terminal, to wait for Enter on: not fd 0, which pytest's capturing keeps on /dev/null
    between the phases of a test."""
    try:
        return open("/dev/tty")
    except OSError:
        return None
