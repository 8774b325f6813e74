"""The Machine API on a fake runner: command lines, waits, units, journal, power, console."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from pytest_mkosi.machine.result import CommandFailed, CommandTimeout
from tests.unit.fake_machines import FakeRunner, machine_answering


def test_strings_run_with_pipefail_and_errexit_lists_as_quoted_words(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {".": (0, "", "")})
    machine.run("false | true")
    machine.run(["echo", "a b", "$HOME"])
    lines = machine.runner.conn.lines  # type: ignore[attr-defined]
    assert lines[1] == "{ set -o pipefail -e\nfalse | true\n}"
    assert lines[2] == "echo 'a b' '$HOME'"


def test_default_timeout_is_the_machines_and_can_be_given(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {".": (0, "", "")})
    machine.run("true")
    machine.run("true", timeout=3)
    assert machine.runner.conn.timeouts[1:] == [42, 3]  # type: ignore[attr-defined]


def test_result_names_the_command_as_given(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {".": (0, "out\n", "")})
    assert machine.run(["echo", "x y"]).command == "echo 'x y'"
    assert machine.run("echo hi").command == "echo hi"


def test_stream_logs_lines_to_the_plugin_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    machine = machine_answering(tmp_path, {".": (0, "one\ntwo\n", "")})
    with caplog.at_level(logging.INFO, logger="pytest_mkosi"):
        machine.succeed("x", stream=True)
    assert [r.getMessage() for r in caplog.records if r.name == "pytest_mkosi"][-2:] == [
        "fake stdout: one", "fake stdout: two"]


def test_wait_until_fails_retries_until_non_zero(tmp_path: Path) -> None:
    answers = iter([(0, "", ""), (0, "", ""), (1, "", "gone\n")])
    machine = machine_answering(tmp_path, lambda line: next(answers))
    assert machine.wait_until_fails("probe", interval=0) == "gone\n"


def test_a_timed_out_attempt_is_a_failed_attempt_of_a_wait(tmp_path: Path) -> None:
    calls = []

    def respond(line: str) -> tuple[int, str, str]:
        calls.append(line)
        if len(calls) == 1:
            raise CommandTimeout("probe", 1.0)
        return (0, "ok", "")

    machine = machine_answering(tmp_path, respond)
    assert machine.wait_until_succeeds("probe", interval=0) == "ok"


def test_wait_for_open_port_uses_bash_dev_tcp(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {"/dev/tcp/127.0.0.1/8080": (0, "", "")})
    machine.wait_for_open_port(8080)
    machine = machine_answering(tmp_path, {"/dev/tcp/::1/22": (1, "", "refused")})
    machine.wait_for_closed_port(22, "::1")


def test_wait_for_file_times_out_with_the_last_result(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {"test -e /nope": (1, "", "")})
    with pytest.raises(CommandFailed, match=r"did not succeed within 0s"):
        machine.wait_for_file("/nope", timeout=0)


def show(**props: str) -> tuple[int, str, str]:
    return (0, "".join(f"{k}={v}\n" for k, v in props.items()), "")


STATUS = (3, "status text", "")


@pytest.mark.parametrize(("props", "message"), [
    ({"LoadState": "not-found", "ActiveState": "inactive"}, "unknown here"),
    ({"LoadState": "loaded", "ActiveState": "failed", "Result": "exit-code"}, "'failed' .Result=exit-code"),
    ({"LoadState": "loaded", "ActiveState": "inactive", "Job": ""}, "no job is pending"),
])
def test_wait_for_unit_fails_at_once(tmp_path: Path, props: dict[str, str], message: str) -> None:
    machine = machine_answering(tmp_path, {"systemctl show": show(**props), "systemctl status": STATUS})
    started = time.monotonic()
    with pytest.raises(CommandFailed, match=message) as info:
        machine.wait_for_unit("foo.service", timeout=30)
    assert time.monotonic() - started < 5
    assert "status text" in str(info.value)


def test_wait_for_unit_waits_while_a_job_is_pending(tmp_path: Path) -> None:
    answers = iter([show(LoadState="loaded", ActiveState="inactive", Job="17"),
                    show(LoadState="loaded", ActiveState="activating", Job="17"),
                    show(LoadState="loaded", ActiveState="active")])
    machine = machine_answering(tmp_path, lambda line: next(answers))
    machine.wait_for_unit("foo.service")


def test_wait_for_unit_of_a_user_asks_that_users_manager(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {"--user --machine=alice@.host show": show(ActiveState="active")})
    machine.wait_for_unit("pipewire.service", user="alice")


def test_unit_property(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {"--property=MainPID -- ssh.service": show(MainPID="42")})
    assert machine.unit_property("ssh.service", "MainPID") == "42"


def test_journal_parses_json_lines_and_keeps_fields(tmp_path: Path) -> None:
    entries = [{"MESSAGE": "hi", "PRIORITY": "6", "_SYSTEMD_UNIT": "a.service", "MESSAGE_ID": "abc"},
               {"MESSAGE": "ho", "PRIORITY": "3", "__CURSOR": "s=1;i=2;b=3"}]
    text = "".join(json.dumps(e) + "\n" for e in entries)
    machine = machine_answering(tmp_path, {"journalctl": (0, text, "")})
    assert machine.journal(unit="a.service", priority="err") == entries
    line = machine.runner.conn.lines[-1]  # type: ignore[attr-defined]
    assert "--unit=a.service" in line and "--priority=err" in line and "--output=json" in line


def test_journal_since_a_cursor_or_a_time(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {"journalctl": (0, '{"__CURSOR": "s=1;i=2;b=3"}\n', "")})
    assert machine.journal_cursor() == "s=1;i=2;b=3"
    machine.journal(since="s=1;i=2;b=3")
    assert "'--after-cursor=s=1;i=2;b=3'" in machine.runner.conn.lines[-1]  # type: ignore[attr-defined]
    machine.journal(since="-5min")
    assert "--since=-5min" in machine.runner.conn.lines[-1]  # type: ignore[attr-defined]


def test_reboot_checks_that_the_boot_id_changed(tmp_path: Path) -> None:
    ids = iter(["a\n", "b\n"])
    machine = machine_answering(tmp_path, lambda line: (0, next(ids), "") if "boot_id" in line else (0, "", ""))
    machine.reboot()
    runner: FakeRunner = machine.runner  # type: ignore[assignment]
    assert "systemctl --no-block reboot" in runner.conn.lines
    assert runner.events == ["wait_rebooted"]
    machine = machine_answering(tmp_path, lambda line: (0, "same\n", ""))
    with pytest.raises(AssertionError, match="did not reboot"):
        machine.reboot()


def test_crash_then_start_boots_again(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {".": (0, "", "")})
    machine.crash()
    assert not machine.is_running
    with pytest.raises(ConnectionError, match=r"machine.start\(\) boots it again"):
        machine.run("true")
    machine.start()
    assert machine.is_running and machine.runner.events == ["power_off_hard", "start"]  # type: ignore[attr-defined]


def test_shutdown_waits_until_off(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {".": (0, "", "")})
    runner: FakeRunner = machine.runner  # type: ignore[assignment]
    threading.Timer(0.3, lambda: setattr(runner, "running", False)).start()
    machine.shutdown(timeout=10)
    assert "systemctl --no-block poweroff" in runner.conn.lines
    runner.running = True
    with pytest.raises(AssertionError, match="did not power off"):
        machine.shutdown(timeout=0.2)


def test_console_waits_after_the_previous_match_and_strips_escapes(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {".": (0, "", "")})
    log = tmp_path / "console.log"
    log.write_bytes(b"\x1b[0;32m  OK  \x1b[0m] Started\r\nminimal login: ")
    assert machine.console.wait_for_console_text(r"login: ", timeout=1).group(0) == "login: "
    with pytest.raises(AssertionError, match="did not print 'login: '"):
        machine.console.wait_for_console_text(r"login: ", timeout=0.2)
    threading.Timer(0.2, lambda: log.write_bytes(log.read_bytes() + b"\r\nminimal login: ")).start()
    machine.console.wait_for_console_text(r"login: ", timeout=5)
    assert "  OK  ] Started\n" in machine.console.console_log()
    machine.console.send_console("root\n")
    assert machine.runner.typed == ["root\n"]  # type: ignore[attr-defined]


def test_a_timeout_on_a_stalled_stream_connects_again(tmp_path: Path) -> None:
    def respond(line: str) -> tuple[int, str, str]:
        raise CommandTimeout("sleep", 1.0)

    machine = machine_answering(tmp_path, respond)
    runner = machine.runner
    assert isinstance(runner, FakeRunner)
    runner.conn.moving = False  # the round trip after the timeout gets no answer
    with pytest.raises(CommandTimeout):
        machine.run("sleep 100", timeout=1)
    assert runner.events == ["reconnect settle=False"]


def test_a_timeout_on_a_moving_stream_keeps_the_connection(tmp_path: Path) -> None:
    def respond(line: str) -> tuple[int, str, str]:
        raise CommandTimeout("sleep", 1.0)

    machine = machine_answering(tmp_path, respond)
    runner = machine.runner
    assert isinstance(runner, FakeRunner)
    with pytest.raises(CommandTimeout):
        machine.run("sleep 100", timeout=1)
    assert runner.conn.settles == 1 and runner.events == []


def test_a_transfer_that_stops_moving_checks_the_stream_too(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {})
    runner = machine.runner
    assert isinstance(runner, FakeRunner)

    class StalledClient:
        def open_sftp(self) -> None:
            raise TimeoutError("the SFTP channel got no answer")

    runner.conn.client = StalledClient()  # type: ignore[attr-defined]
    runner.conn.moving = False
    with pytest.raises(TimeoutError):
        machine.copy_from("/etc/hostname", tmp_path / "hostname")
    assert runner.events == ["reconnect settle=False"]
