"""Waiting for conditions in the machine: commands, files, ports. Each poll is one `run`."""

from __future__ import annotations

import shlex
import time

from pytest_mkosi.machine.base import Commands
from pytest_mkosi.machine.result import CommandFailed, CommandResult, CommandTimeout

DEFAULT_WAIT = 60.0


class Waits(Commands):
    def _poll(self, cmd: str | list[str], want_success: bool, timeout: float, interval: float) -> CommandResult:
        """Run `cmd` until its exit status is 0 (or not 0); raise with the last result after `timeout`."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                result = self.run(cmd, timeout=max(1.0, remaining))
            except CommandTimeout as e:
                result = CommandResult(e.command, -1, "", str(e), e.timeout)
            if (result.returncode == 0) == want_success and result.returncode != -1:
                return result
            if time.monotonic() >= deadline:
                what = "succeed" if want_success else "fail"
                raise CommandFailed(f"command did not {what} within {timeout:g}s in {self.name}", result)
            time.sleep(interval)

    def wait_until_succeeds(self, cmd: str | list[str], *, timeout: float = DEFAULT_WAIT,
                            interval: float = 0.2) -> str:
        """Retry a command until it exits with 0; return its stdout. Raise with the last result after `timeout`."""
        __tracebackhide__ = True
        return self._poll(cmd, True, timeout, interval).stdout

    def wait_until_fails(self, cmd: str | list[str], *, timeout: float = DEFAULT_WAIT, interval: float = 0.2) -> str:
        """Retry a command until it exits with non-zero; return its stderr."""
        __tracebackhide__ = True
        return self._poll(cmd, False, timeout, interval).stderr

    def wait_for_file(self, path: str, *, timeout: float = DEFAULT_WAIT) -> None:
        """Wait until `path` exists in the machine."""
        __tracebackhide__ = True
        self._poll(["test", "-e", path], True, timeout, 0.2)

    def wait_for_open_port(self, port: int, addr: str = "127.0.0.1", *, timeout: float = DEFAULT_WAIT) -> None:
        """Wait until something accepts TCP connections on addr:port (seen from inside the machine)."""
        __tracebackhide__ = True
        self._poll(_port_probe(addr, port), True, timeout, 0.2)

    def wait_for_closed_port(self, port: int, addr: str = "127.0.0.1", *, timeout: float = DEFAULT_WAIT) -> None:
        """Wait until nothing accepts TCP connections on addr:port any more."""
        __tracebackhide__ = True
        self._poll(_port_probe(addr, port), False, timeout, 0.2)


def _port_probe(addr: str, port: int) -> str:
    # bash's /dev/tcp needs nothing installed in the guest.
    return f"exec 3<>/dev/tcp/{shlex.quote(addr)}/{int(port)}"
