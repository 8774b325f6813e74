"""A runner and SSH connection that answer from a script, for the Machine API's unit tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pytest_mkosi.machine import Machine
from pytest_mkosi.machine.result import CommandResult
from pytest_mkosi.machine.runner import Runner

# A responder gets the shell line the machine sent and answers (returncode, stdout, stderr).
Responder = Callable[[str], tuple[int, str, str]]


class FakeConnection:
    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.lines: list[str] = []
        self.timeouts: list[float | None] = []
        # Whether a round trip gets an answer (False: the stream stopped moving), and how often one was made.
        self.moving = True
        self.settles = 0

    def settle(self, *, timeout: float = 30.0) -> bool:
        self.settles += 1
        return self.moving

    def run(self, command: str, *, timeout: float | None = None, on_line: object = None,
            display: str | None = None) -> CommandResult:
        self.lines.append(command)
        self.timeouts.append(timeout)
        if command == 'printf %s "$BASH_VERSION"':
            return CommandResult(command, 0, "5.2", "")
        rc, out, err = self.respond(command)
        if callable(on_line):
            for line in out.splitlines():
                on_line("stdout", line)
        return CommandResult(display or command, rc, out, err)

    def run_bash(self, code: str, *, timeout: float | None = None, on_line: object = None,
                 display: str | None = None) -> CommandResult:
        # The guest's command shell takes the code as is; the fake sees the same line a test expects.
        return self.run(code, timeout=timeout, on_line=on_line, display=display)


class FakeRunner(Runner):
    kind = "fake"
    accelerator = None

    def __init__(self, state_dir: Path, respond: Responder) -> None:
        self.name = "fake"
        self.state_dir = state_dir
        self.console_log_path = state_dir / "console.log"
        self.conn = FakeConnection(respond)
        self.running = True
        self.typed: list[str] = []
        self.events: list[str] = []

    def start(self, *, timeout: float) -> None:
        self.events.append("start")
        self.running = True

    def stop(self) -> None:
        self.running = False

    def connection(self):  # type: ignore[no-untyped-def]
        if not self.running:
            raise ConnectionError("not running")
        return self.conn

    def wait_rebooted(self, *, timeout: float) -> None:
        self.events.append("wait_rebooted")

    def reconnect(self, *, timeout: float = 120.0, settle: bool = True) -> None:
        self.events.append(f"reconnect settle={settle}")
        self.conn.moving = True

    def power_off_hard(self) -> None:
        self.events.append("power_off_hard")
        self.running = False

    def is_running(self) -> bool:
        return self.running

    def send_console(self, text: str) -> None:
        self.typed.append(text)

    def ssh_command(self) -> str:
        return "ssh fake"


def machine_answering(tmp_path: Path, answers: dict[str, tuple[int, str, str]] | Responder) -> Machine:
    """A Machine on a FakeRunner; `answers` maps regexes (searched in the shell line) to answers."""
    if callable(answers):
        respond = answers
    else:
        table = answers

        def respond(line: str) -> tuple[int, str, str]:
            for pattern, answer in table.items():
                if re.search(pattern, line):
                    return answer
            raise AssertionError(f"unexpected command: {line}")

    return Machine(FakeRunner(tmp_path, respond), command_timeout=42)
