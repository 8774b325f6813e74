"""The root of the Machine API: one abstract `run`, and succeed/fail on top of it."""

from __future__ import annotations

import abc

from pytest_mkosi.machine.result import CommandFailed, CommandResult


class Commands(abc.ABC):
    """Something that runs commands. Every other helper of the API is written on `run` alone."""

    name: str

    @abc.abstractmethod
    def run(self, cmd: str | list[str], *, timeout: float | None = None, stream: bool = False) -> CommandResult:
        """Run a command in the machine and return its exit status and output.

        A string runs under `bash -o pipefail -e -c`; a list is run as is (its words quoted). When `timeout`
        (default: --mkosi-command-timeout) passes, the command and everything it started are killed in the
        guest and CommandTimeout (an AssertionError) is raised. `stream=True` also logs each output line as it
        comes (logger "pytest_mkosi", shown by pytest's live log).
        """

    def succeed(self, cmd: str | list[str], *, timeout: float | None = None, stream: bool = False) -> str:
        """Run a command that must exit with 0; return its stdout."""
        __tracebackhide__ = True
        result = self._run(cmd, timeout, stream)
        if result.returncode != 0:
            raise CommandFailed(f"command failed in {self.name}", result)
        return result.stdout

    def fail(self, cmd: str | list[str], *, timeout: float | None = None, stream: bool = False) -> str:
        """Run a command that must exit with non-zero; return its stderr."""
        __tracebackhide__ = True
        result = self._run(cmd, timeout, stream)
        if result.returncode == 0:
            raise CommandFailed(f"command unexpectedly succeeded in {self.name}", result)
        return result.stderr

    def _run(self, cmd: str | list[str], timeout: float | None, stream: bool) -> CommandResult:
        __tracebackhide__ = True
        # Only pass stream= when asked, so machines written against the older run(cmd, *, timeout) still work.
        return self.run(cmd, timeout=timeout, stream=True) if stream else self.run(cmd, timeout=timeout)

    def systemctl(self, *args: str, user: str | None = None) -> CommandResult:
        """`systemctl ARGS` in the machine (for `user`: in that user's service manager)."""
        return self.run(systemctl_argv(*args, user=user))


def systemctl_argv(*args: str, user: str | None = None) -> list[str]:
    if user is None:
        return ["systemctl", *args]
    return ["systemctl", "--user", f"--machine={user}@.host", *args]
