"""What every machine offers tests: run/succeed/fail and waiting helpers on top of one `run`."""

from __future__ import annotations

import abc
import shlex
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"command: {self.command}\nexit status: {self.returncode}\n"
            f"stdout:\n{_indent(self.stdout)}\nstderr:\n{_indent(self.stderr)}"
        )


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.rstrip("\n").splitlines()) or "    (empty)"


class CommandFailed(AssertionError):
    """A command's exit status was not what the test expected. An AssertionError, so pytest shows it as one."""

    def __init__(self, expectation: str, result: CommandResult) -> None:
        super().__init__(f"{expectation}\n{result}")
        self.result = result


def as_command(cmd: str | list[str]) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


class Machine(abc.ABC):
    """A running image. Subclasses implement `run`; the rest is built on it."""

    name: str

    @abc.abstractmethod
    def run(self, cmd: str | list[str], *, timeout: float | None = None) -> CommandResult:
        """Run a shell command in the machine and return its exit status and output."""

    def succeed(self, cmd: str | list[str], *, timeout: float | None = None) -> str:
        """Run a command that must exit with 0; return its stdout."""
        result = self.run(cmd, timeout=timeout)
        if result.returncode != 0:
            raise CommandFailed(f"command failed in {self.name}", result)
        return result.stdout

    def fail(self, cmd: str | list[str], *, timeout: float | None = None) -> str:
        """Run a command that must exit with non-zero; return its stderr."""
        result = self.run(cmd, timeout=timeout)
        if result.returncode == 0:
            raise CommandFailed(f"command unexpectedly succeeded in {self.name}", result)
        return result.stderr

    def wait_until_succeeds(self, cmd: str | list[str], *, timeout: float = 60.0, interval: float = 0.2) -> str:
        """Retry a command until it exits with 0; raise with the last result when `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.run(cmd, timeout=timeout)
            if result.returncode == 0:
                return result.stdout
            if time.monotonic() >= deadline:
                raise CommandFailed(f"command did not succeed within {timeout:.0f}s in {self.name}", result)
            time.sleep(interval)

    def wait_for_unit(self, unit: str, *, timeout: float = 60.0) -> None:
        """Wait until a unit is active; fail early if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(["systemctl", "is-active", unit]).stdout.strip()
            if state == "active":
                return
            if state == "failed" or time.monotonic() >= deadline:
                status = self.run(["systemctl", "status", "--no-pager", "--lines=30", unit])
                raise CommandFailed(f"unit {unit} is {state!r}, not active, in {self.name}", status)
            time.sleep(0.2)

    def systemctl(self, *args: str) -> CommandResult:
        return self.run(["systemctl", *args])
