"""What a command in a machine produced, and the errors tests see when it was not what they expected."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    command: str
    returncode: int
    stdout: str
    stderr: str
    # Seconds from sending the command to having its exit status and all its output.
    duration: float = 0.0

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


class CommandTimeout(AssertionError):
    """A command did not finish in time; it was killed in the guest (with everything it started)."""

    def __init__(self, command: str, timeout: float, stdout: str = "", stderr: str = "") -> None:
        partial = CommandResult(command, -1, stdout, stderr, timeout)
        super().__init__(f"command did not finish within {timeout:g}s and was killed: {command}\n{partial}")
        self.command = command
        self.timeout = timeout


def as_command(cmd: str | list[str]) -> str:
    """The shell line a command runs as: a string under `bash -o pipefail -e -c`, a list as is (quoted)."""
    if isinstance(cmd, str):
        return shlex.join(["bash", "-o", "pipefail", "-e", "-c", cmd])
    return shlex.join(cmd)


def as_bash_code(cmd: str | list[str]) -> str:
    """as_command() as code for a bash that is already running (the command shell runs it in a subshell of
    its own): a string in a group with `set -o pipefail -e` (the same as `bash -o pipefail -e -c`, without
    starting another bash; parsed whole before it runs), a list as is (quoted)."""
    if isinstance(cmd, str):
        return f"{{ set -o pipefail -e\n{cmd}\n}}"
    return shlex.join(cmd)
