"""systemd in the machine: waiting for units, their properties, the journal."""

from __future__ import annotations

import json
import time
from typing import Any

from pytest_mkosi.evidence.boottime import MANAGER_PROPERTIES, UNIT_PROPERTIES, BootTimings, boot_timings, parse_show
from pytest_mkosi.machine.base import Commands, systemctl_argv
from pytest_mkosi.machine.result import CommandFailed, CommandResult
from pytest_mkosi.machine.waits import DEFAULT_WAIT

UNIT_STATE = ("LoadState", "ActiveState", "SubState", "Result", "Job")


class Systemd(Commands):
    def unit_properties(self, unit: str, *names: str, user: str | None = None) -> dict[str, str]:
        """Properties of a unit as `systemctl show` prints them."""
        __tracebackhide__ = True
        argv = systemctl_argv("show", f"--property={','.join(names)}", "--", unit, user=user)
        result = self.run(argv)
        if result.returncode != 0:
            raise CommandFailed(f"cannot read the properties of {unit} in {self.name}", result)
        values = dict.fromkeys(names, "")
        for line in result.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key] = value
        return values

    def unit_property(self, unit: str, name: str, *, user: str | None = None) -> str:
        """One property of a unit, e.g. unit_property("sshd.service", "MainPID")."""
        __tracebackhide__ = True
        return self.unit_properties(unit, name, user=user)[name]

    def wait_for_unit(self, unit: str, *, timeout: float = DEFAULT_WAIT, user: str | None = None) -> None:
        """Wait until a unit is active. Fail at once when it is unknown, failed, or inactive with no job
        pending (nothing will start it); fail after `timeout` while it is still on its way."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        while True:
            state = self.unit_properties(unit, *UNIT_STATE, user=user)
            active, job = state["ActiveState"], state["Job"]
            problem = None
            if state["LoadState"] in ("not-found", "bad-setting", "error", "masked"):
                problem = f"unit {unit} is unknown here (LoadState={state['LoadState']})"
            elif active == "active":
                return
            elif active == "failed":
                problem = f"unit {unit} is 'failed' (Result={state['Result']})"
            elif active == "inactive" and job in ("", "0"):
                problem = f"unit {unit} is 'inactive' and no job is pending to start it"
            elif time.monotonic() >= deadline:
                problem = f"unit {unit} is {active!r}, not active, after {timeout:g}s"
            if problem is not None:
                # A CommandFailed showing `systemctl status`, so the test output says why.
                raise CommandFailed(f"{problem} in {self.name}", self._unit_status(unit, user))
            time.sleep(0.1)

    def _unit_status(self, unit: str, user: str | None) -> CommandResult:
        return self.run(systemctl_argv("status", "--no-pager", "--full", "--lines=30", "--", unit, user=user))

    def journal(self, since: str | None = None, unit: str | None = None,
                priority: str | int | None = None) -> list[dict[str, Any]]:
        """Journal entries as dicts of their fields (MESSAGE, PRIORITY, _SYSTEMD_UNIT, MESSAGE_ID, ...).

        `since`: a cursor from journal_cursor() (entries after it) or a journalctl time ("-5min", "today").
        `priority`: "err", 3, "warning..err" as journalctl's --priority takes it.
        """
        __tracebackhide__ = True
        argv = ["journalctl", "--output=json", "--no-pager", "--quiet"]
        if since is not None:
            argv.append(f"--after-cursor={since}" if _is_cursor(since) else f"--since={since}")
        if unit is not None:
            argv.append(f"--unit={unit}")
        if priority is not None:
            argv.append(f"--priority={priority}")
        output = self.succeed(argv)
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def journal_cursor(self) -> str:
        """The cursor of the newest journal entry: journal(since=cursor) returns what came after it."""
        __tracebackhide__ = True
        output = self.succeed(["journalctl", "--lines=1", "--output=json", "--no-pager", "--quiet"])
        return str(json.loads(output)["__CURSOR"])

    def boot_timings(self, *, slowest: int = 10, timeout: float = 120.0) -> BootTimings:
        """How long this boot took (firmware, loader, kernel, initrd, userspace, total) and its `slowest` units,
        from the manager's and the units' timestamps (`systemctl show`); waits until the boot has finished."""
        __tracebackhide__ = True
        result = self.run(_timings_script(timeout), timeout=timeout + 30)
        if result.returncode != 0:
            raise CommandFailed(f"cannot read the boot timings of {self.name}", result)
        virt, manager, units = result.stdout.split(_SEPARATOR + "\n", 2)
        blocks = parse_show(manager)
        try:
            return boot_timings(blocks[0] if blocks else {}, parse_show(units), slowest,
                                container=virt.strip() != "none")
        except ValueError as e:
            raise AssertionError(f"{self.name}: {e}") from None


_SEPARATOR = "--pytest-mkosi--"


def _timings_script(timeout: float) -> str:
    # One round trip: wait for the boot to end (a degraded boot ends too), then what the timings are made of:
    # the manager's properties and those of every loaded unit ("*" matches them all).
    return "\n".join([
        f"timeout {int(timeout)} systemctl is-system-running --wait >/dev/null || true",
        "systemd-detect-virt --container || true",
        f"echo {_SEPARATOR}",
        "systemctl show " + " ".join(f"-p {p}" for p in MANAGER_PROPERTIES),
        f"echo {_SEPARATOR}",
        "systemctl show --all " + " ".join(f"-p {p}" for p in UNIT_PROPERTIES) + " -- '*'",
    ])


def _is_cursor(text: str) -> bool:
    # Cursors look like "s=...;i=...;b=...;m=...;t=...;x=...".
    return text.startswith("s=") and ";i=" in text
