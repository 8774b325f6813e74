"""The Machine tests use: the same on every runner (nspawn, qemu), built on the runner contract (runner.py)."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import RunError
from pytest_mkosi.machine import files
from pytest_mkosi.machine.console import Console
from pytest_mkosi.machine.result import (
    CommandFailed,
    CommandResult,
    CommandTimeout,
    as_bash_code,
    as_command,
)
from pytest_mkosi.machine.systemd import Systemd
from pytest_mkosi.machine.tpm import Tpm
from pytest_mkosi.machine.waits import Waits

if TYPE_CHECKING:
    from collections.abc import Iterator

    import paramiko

    from pytest_mkosi.machine.runner import Runner
    from pytest_mkosi.transport.ssh import SshConnection

__all__ = ["CommandFailed", "CommandResult", "CommandTimeout", "Machine", "as_command"]

log = logging.getLogger("pytest_mkosi")

DEFAULT_COMMAND_TIMEOUT = 300.0
# How long a round trip may take before the SSH stream counts as stalled (Machine._recover_stream).
STREAM_CHECK_SECONDS = 20.0
BOOT_ID = "/proc/sys/kernel/random/boot_id"


class Machine(Waits, Systemd, Tpm):
    """A running image: commands, waits, files, power, console and journal, on top of a Runner."""

    def __init__(self, runner: Runner, *, command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
                 boot_timeout: float = 120.0) -> None:
        self.runner = runner
        self.name = runner.name
        self.command_timeout = command_timeout
        self.boot_timeout = boot_timeout
        self.console = Console(runner)
        # Whether root's login shell is bash (then string commands need no bash of their own).
        self._login_bash: bool | None = None
        # shutdown() or crash() powered it off: a machine that is off for that did not die.
        self.powered_off_by_test = False

    # -- commands ------------------------------------------------------------------------------------

    def run(self, cmd: str | list[str], *, timeout: float | None = None, stream: bool = False) -> CommandResult:
        __tracebackhide__ = True
        display = cmd if isinstance(cmd, str) else as_command(cmd)
        limit = self.command_timeout if timeout is None else timeout

        def to_log(stream_name: str, line: str) -> None:
            log.info("%s %s: %s", self.name, stream_name, line)

        try:
            connection = self.runner.connection()
        except ConnectionError as e:
            raise ConnectionError(f"{self.name} is not reachable ({e}); was it shut down or crashed? "
                                  "machine.start() boots it again") from None
        if self._login_bash is None:
            probe = connection.run('printf %s "$BASH_VERSION"', timeout=30)
            self._login_bash = probe.returncode == 0 and probe.stdout != ""
        sink = to_log if stream else None
        try:
            if self._login_bash:
                result = connection.run_bash(as_bash_code(cmd), timeout=limit, on_line=sink, display=display)
            else:
                result = connection.run(as_command(cmd), timeout=limit, on_line=sink, display=display)
        except CommandTimeout:
            self._recover_stream(connection)
            raise
        log.debug("%s: %s -> %d in %.3fs", self.name, display, result.returncode, result.duration)
        return result

    def _recover_stream(self, connection: SshConnection) -> None:
        """After a command timed out: one round trip tells whether the SSH stream still moves (the command
        was just slow) or stopped (a guest that lost a wake-up under TCG, a relay gone): then a new connection,
        so that one stalled test does not fail all the tests after it."""
        if not self.runner.is_running() or connection.settle(timeout=STREAM_CHECK_SECONDS):
            return
        log.warning("%s: the SSH connection stopped moving; connecting again", self.name)
        try:
            self.runner.reconnect(settle=False)
        except (NotImplementedError, ConnectionError, TimeoutError, OSError, RunError) as e:
            log.warning("%s: connecting again failed: %s", self.name, e)

    # -- files ---------------------------------------------------------------------------------------

    def copy_to(self, host_path: Path | str, guest_path: str) -> None:
        """Copy a host file or tree into the machine; `guest_path` is what it becomes."""
        with self._sftp() as sftp:
            files.copy_to(sftp, Path(host_path), guest_path)

    def copy_from(self, guest_path: str, host_path: Path | str) -> None:
        """Copy a file or tree out of the machine; `host_path` is what it becomes."""
        with self._sftp() as sftp:
            files.copy_from(sftp, guest_path, Path(host_path))

    @contextlib.contextmanager
    def _sftp(self) -> Iterator[paramiko.SFTPClient]:
        connection = self.runner.connection()
        try:
            with connection.client.open_sftp() as sftp:
                # A transfer that stops moving fails after --mkosi-command-timeout instead of hanging the
                # session (and the stream is checked, as after a timed out command).
                sftp.get_channel().settimeout(self.command_timeout)  # type: ignore[union-attr]
                yield sftp
        except TimeoutError:
            self._recover_stream(connection)
            raise

    # -- power ---------------------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self.runner.is_running()

    def start(self, *, timeout: float | None = None) -> None:
        """Boot the machine (again, after shutdown() or crash()); returns when it answers over SSH."""
        if not self.runner.is_running():
            self.runner.start(timeout=timeout or self.boot_timeout)
            self._login_bash = None
        self.powered_off_by_test = False

    def boot_id(self) -> str:
        return self.succeed(["cat", BOOT_ID]).strip()

    def reboot(self, *, timeout: float | None = None) -> None:
        """Reboot the guest; returns when the new boot answers over SSH (the connection is made again)."""
        __tracebackhide__ = True
        before = self.boot_id()
        self.console.skip_to_end()
        self._ask("reboot")
        self.runner.wait_rebooted(timeout=timeout or self.boot_timeout)
        if self.boot_id() == before:
            raise AssertionError(f"{self.name} did not reboot: the boot id is still {before}")

    def shutdown(self, *, timeout: float = 60.0) -> None:
        """Power the guest off from inside (systemctl poweroff); returns when it is off."""
        __tracebackhide__ = True
        self.powered_off_by_test = True
        self._ask("poweroff")
        deadline = time.monotonic() + timeout
        while self.runner.is_running():
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name} did not power off within {timeout:g}s")
            time.sleep(0.05)

    def crash(self) -> None:
        """Cut the power: no shutdown runs in the guest."""
        self.powered_off_by_test = True
        self.runner.power_off_hard()

    def _ask(self, verb: str) -> None:
        # --no-block: the answer comes back before the connection goes down with the guest.
        with contextlib.suppress(ConnectionError, EOFError, OSError, CommandTimeout):
            self.run(["systemctl", "--no-block", verb], timeout=30)

    # -- access --------------------------------------------------------------------------------------

    @property
    def ssh(self) -> paramiko.SSHClient:
        """The connected paramiko client (of the current boot)."""
        return self.runner.connection().client

    def ssh_command(self) -> str:
        """A command line a person can paste into a shell to log into the machine while it runs."""
        return self.runner.ssh_command()
