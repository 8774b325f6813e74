"""run/succeed/fail and the waiting helpers, on a machine whose process layer is faked."""

from __future__ import annotations

import pytest

from pytest_mkosi.machine.api import CommandFailed, CommandResult, Machine


class FakeMachine(Machine):
    def __init__(self, results: list[CommandResult]) -> None:
        self.name = "fake"
        self.results = results
        self.commands: list[str] = []

    def run(self, cmd: str | list[str], *, timeout: float | None = None) -> CommandResult:
        command = cmd if isinstance(cmd, str) else " ".join(cmd)
        self.commands.append(command)
        return self.results.pop(0)


def result(rc: int, out: str = "", err: str = "") -> CommandResult:
    return CommandResult("cmd", rc, out, err)


def test_succeed_returns_stdout() -> None:
    assert FakeMachine([result(0, "hello\n")]).succeed("echo hello") == "hello\n"


def test_succeed_shows_status_and_both_streams() -> None:
    with pytest.raises(CommandFailed) as info:
        FakeMachine([result(3, "the out", "the err")]).succeed("false")
    text = str(info.value)
    assert "exit status: 3" in text and "the out" in text and "the err" in text
    assert isinstance(info.value, AssertionError)


def test_fail_is_the_opposite() -> None:
    assert FakeMachine([result(1, "", "no\n")]).fail("false") == "no\n"
    with pytest.raises(CommandFailed, match="unexpectedly succeeded"):
        FakeMachine([result(0)]).fail("true")


def test_wait_until_succeeds_retries() -> None:
    machine = FakeMachine([result(1), result(1), result(0, "ok")])
    assert machine.wait_until_succeeds("probe", interval=0) == "ok"
    assert len(machine.commands) == 3


def test_wait_until_succeeds_times_out_with_last_result() -> None:
    machine = FakeMachine([result(1, "", "still no")] * 100)
    with pytest.raises(CommandFailed, match="still no"):
        machine.wait_until_succeeds("probe", timeout=0, interval=0)


def test_wait_for_unit_fails_early_on_failed_unit() -> None:
    # systemctl show's answer, then systemctl status for the error message.
    machine = FakeMachine([result(0, "LoadState=loaded\nActiveState=failed\nResult=exit-code\n"),
                           result(3, "x foo.service - Foo")])
    with pytest.raises(CommandFailed, match=r"foo\.service is .failed."):
        machine.wait_for_unit("foo.service")
