"""What a machine recorded during one test (or its boot): the journal and console slices, coredumps, failed units
and whether it still answers. One round trip over SSH per test: the slice starts where the previous one ended
(the last entry's cursor, the console's byte offset), so every journal entry belongs to exactly one test,
including what fixtures did before it."""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_mkosi.evidence import badness
from pytest_mkosi.evidence.boottime import BootTimings
from pytest_mkosi.machine.result import CommandTimeout

if TYPE_CHECKING:
    from pytest_mkosi.machine import Machine

SEPARATOR = "--pytest-mkosi-evidence--"
# How long the collection may take before the machine counts as not answering.
COLLECT_TIMEOUT = 30.0
# Under TCG a guest runs ten or more times slower, and the host may be busy too: a slow answer is not death.
TCG_SLOWDOWN = 6
# Cores up to this size are copied out of the guest with the artifacts.
SMALL_CORE = 16 * 1024 * 1024


@dataclass(frozen=True)
class Coredump:
    """One coredump systemd-coredump recorded in the guest, or a unit PID 1 saw dump core (nspawn, where the
    kernel writes cores by the host's core_pattern and systemd-coredump never sees them)."""

    pid: str
    executable: str
    signal: str
    unit: str | None
    info: str = ""  # `coredumpctl info` in the guest, when it has coredumpctl
    core: bytes | None = None  # the core itself when small enough


@dataclass
class Slice:
    entries: list[dict[str, Any]] = field(default_factory=list)
    console: str = ""
    failed_units: str = ""
    coredumps: list[Coredump] = field(default_factory=list)
    # None while the machine runs and answers; otherwise what happened to it.
    died: str | None = None
    # The test itself powered it off (machine.crash(), machine.shutdown()): a death, but no failure.
    on_purpose: bool = False
    seconds: float = 0.0

    def hits(self) -> list[badness.Hit]:
        return badness.scan_journal(self.entries) + badness.scan_console(self.console)


@dataclass
class Boot:
    """What one boot of a machine showed: its slice, its timings and its chart (systemd-analyze plot)."""

    number: int
    slice: Slice
    timings: BootTimings | None
    chart: str | None
    timing_error: str | None = None


def _slice_script(cursor: str | None) -> str:
    since = f"--after-cursor={shlex.quote(cursor)}" if cursor else "--boot"
    return "\n".join([
        f"journalctl --output=json --no-pager --quiet {since} || true",
        f"echo {SEPARATOR}",
        "systemctl --failed --no-legend --plain --no-pager || true",
    ])


def _parse_entries(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # a line journalctl cut off; the next test's slice has it whole
    return entries


class Watch:
    """The evidence of one machine, slice after slice."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.cursor: str | None = None
        self.offset = 0
        self.boots: list[Boot] = []
        # Set by before_boot(): the next slice is a boot's (the whole journal of the current boot).
        self._boot_pending = True
        # Fresh machines (fixtures/fresh.py): the index in `boots` of the boot the machine was saved in, and
        # the one it runs in now when that is not the last collected (a restore went back to a saved one).
        self._saved_boot: int | None = None
        self._current_boot: int | None = None
        self.restores = 0

    @property
    def timeout(self) -> float:
        """How long one collecting command may take on this machine."""
        return COLLECT_TIMEOUT * (TCG_SLOWDOWN if self.machine.runner.accelerator == "tcg" else 1)

    def before_boot(self) -> None:
        """Call before the machine boots again: its console from here on and its journal belong to the boot."""
        self.offset = self.machine.console.offset()
        self._boot_pending = True

    @property
    def boot_pending(self) -> bool:
        return self._boot_pending

    @property
    def current_boot(self) -> Boot | None:
        """The boot the machine is in (after a restore: the one it was saved in)."""
        if self._current_boot is not None:
            return self.boots[self._current_boot]
        return self.boots[-1] if self.boots else None

    def saved(self) -> None:
        """The machine was saved just now (for fresh tests): a restore brings back its current boot."""
        self._saved_boot = len(self.boots) if self._boot_pending else len(self.boots) - 1

    def restored(self) -> None:
        """The machine was put back into its saved state: the next slice starts at its journal's and
        console's ends now (what the restore itself logged belongs to no test, so no badness gate fires on
        it), and its boot is the saved one, not a new boot to collect."""
        self.offset = self.machine.console.offset()
        result = self.machine.run("journalctl --no-pager --quiet --lines=1 --output=json", timeout=COLLECT_TIMEOUT)
        cursors = [e["__CURSOR"] for e in _parse_entries(result.stdout) if "__CURSOR" in e]
        self.cursor = cursors[-1] if cursors else None
        self.restores += 1
        if self._saved_boot is not None and self._saved_boot < len(self.boots):
            self._boot_pending = False
            self._current_boot = self._saved_boot

    def collect(self) -> Slice:
        """The slice since the previous one (or the boot's, before the first test of a boot)."""
        started = time.monotonic()
        found = Slice()
        found.console = self.machine.console.console_since(self.offset)
        self.offset = self.machine.console.offset()
        if not self.machine.is_running:
            found.died = "the machine is not running any more"
            found.on_purpose = self.machine.powered_off_by_test
        else:
            try:
                cursor = None if self._boot_pending else self.cursor
                result = self.machine.run(_slice_script(cursor), timeout=self.timeout)
                journal, _, failed = result.stdout.partition(f"{SEPARATOR}\n")
                found.entries = _parse_entries(journal)
                found.failed_units = failed.strip()
                cursors = [e["__CURSOR"] for e in found.entries if "__CURSOR" in e]
                if cursors:
                    self.cursor = cursors[-1]
                found.coredumps = self._coredumps(found.entries)
            except (ConnectionError, CommandTimeout, EOFError, OSError) as e:
                found.died = f"the machine does not answer any more ({e})"
        found.seconds = time.monotonic() - started
        return found

    def collect_boot(self, *, timeout: float) -> Boot:
        """The boot's slice, timings and chart, once it has finished booting."""
        self._boot_pending = True
        timings, error = None, None
        try:
            timings = self.machine.boot_timings(timeout=timeout)
        except (AssertionError, ConnectionError, CommandTimeout) as e:
            error = str(e)
        boot_slice = self.collect()
        self._boot_pending = False
        chart = None
        if boot_slice.died is None:
            # The chart is a nicety: a guest too slow to draw it in time costs the chart, not the test.
            with contextlib.suppress(ConnectionError, CommandTimeout, EOFError, OSError):
                plot = self.machine.run("systemd-analyze plot", timeout=self.timeout)
                chart = plot.stdout if plot.returncode == 0 and "<svg" in plot.stdout else None
        boot = Boot(len(self.boots) + 1, boot_slice, timings, chart, error)
        self.boots.append(boot)
        self._current_boot = None
        return boot

    # -- coredumps -----------------------------------------------------------------------------------

    def _coredumps(self, entries: list[dict[str, Any]]) -> list[Coredump]:
        found = []
        for entry in entries:
            if entry.get("MESSAGE_ID") == badness.COREDUMP:
                found.append(self._stored_coredump(entry))
            elif entry.get("MESSAGE_ID") == badness.UNIT_RESULT and entry.get("UNIT_RESULT") == "core-dump":
                unit = str(entry.get("UNIT") or entry.get("_SYSTEMD_UNIT") or "?")
                found.append(Coredump("?", "?", "?", unit, info=f"{unit}: its main process dumped core (PID 1 saw "
                                      "it; systemd-coredump did not record it: in a container the kernel writes "
                                      "cores by the host's core_pattern)"))
        return found

    def _stored_coredump(self, entry: dict[str, Any]) -> Coredump:
        pid = str(entry.get("COREDUMP_PID", "?"))
        exe = str(entry.get("COREDUMP_EXE") or entry.get("COREDUMP_COMM") or "?")
        signal = str(entry.get("COREDUMP_SIGNAL_NAME") or entry.get("COREDUMP_SIGNAL") or "?")
        unit = entry.get("COREDUMP_UNIT")
        match = f"COREDUMP_PID={pid} _BOOT_ID={entry.get('_BOOT_ID', '')}"
        info = self.machine.run(f"command -v coredumpctl >/dev/null || exit 0; coredumpctl info --no-pager {match}",
                                timeout=self.timeout)
        core = self._small_core(match)
        return Coredump(pid, exe, signal, str(unit) if unit else None, info.stdout.strip(), core)

    def _small_core(self, match: str) -> bytes | None:
        path = f"/var/tmp/pytest-mkosi-core-{time.monotonic_ns()}"
        size = self.machine.run(f"coredumpctl dump --no-pager --output={path} {match} >/dev/null 2>&1 && "
                                f"stat -c %s {path}", timeout=self.timeout)
        try:
            if size.returncode != 0 or not size.stdout.strip().isdigit() or int(size.stdout) > SMALL_CORE:
                return None
            with self.machine.ssh.open_sftp() as sftp, sftp.open(path, "rb") as f:
                return bytes(f.read())
        finally:
            self.machine.run(["rm", "-f", path], timeout=self.timeout)

