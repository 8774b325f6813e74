"""One boot of a qemu machine as the runner sees it: the supervisor process (runners/qemu_supervisor.py) that
runs qemu and its helpers, and the events it sends (the helpers' and qemu's pids, qemu's exit)."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path

import imagebuild
from imagebuild.errors import RunError
from pytest_mkosi.machine.state import StateDir, kill_tree
from pytest_mkosi.runners.qemu_supervisor import STOP_GRACE, Spec

SUPERVISOR = Path(__file__).with_name("qemu_supervisor.py")
# Signals qemu dies of by its own fault (a TCG bug under load, say), not by being stopped: boot again.
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE})
QEMU_LOG_TAIL_LINES = 12
EXIT_REPORT_WAIT = 5.0  # seconds: from the readiness port's EOF until qemu's exit is reported


class QemuCrashed(Exception):
    """qemu itself died of a signal during a boot (not the guest's doing); `since`: where the boot's console
    output begins in the log, as GuestStalled's."""

    def __init__(self, report: str, *, since: int = 0) -> None:
        super().__init__(report)
        self.since = since


def supervisor_env() -> dict[str, str]:
    """This process's environment, with this process's imagebuild first on the supervisor's path."""
    source = str(Path(imagebuild.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{path}" if path else source}


class SupervisedBoot:
    """Started by start(); qemu runs until it exits or kill() ends it. close() once it is over."""

    def __init__(self, process: subprocess.Popen[bytes], state: StateDir) -> None:
        self.process = process
        self.state = state
        self.accelerator: str | None = None
        self.accelerator_note = ""
        self.qemu_pid: int | None = None
        self.returncode: int | None = None  # qemu's
        self.error: str | None = None  # why qemu never started
        self._changed = threading.Condition()
        self._qemu_exited = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"qemu {state.path.name}", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, spec: Spec, state: StateDir, *, timeout: float) -> SupervisedBoot:
        """Start the supervisor and return once qemu runs (RunError with the reason if it does not)."""
        spec_path = state.path / "supervisor.pickle"
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            pickle.dump(vars(spec), f)
        with (state.path / "supervisor.log").open("ab") as log:
            # stdin: a pipe only this process holds; EOF tells the supervisor the session ended.
            process = subprocess.Popen([sys.executable, "-P", str(SUPERVISOR), str(spec_path)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                       env=supervisor_env(), start_new_session=True)
        state.record_process(process.pid)
        boot = cls(process, state)
        with boot._changed:
            boot._changed.wait_for(lambda: boot.qemu_pid is not None or boot._qemu_exited.is_set(), timeout)
        if boot.qemu_pid is None:
            boot.kill()
            boot.close()
            why = boot.error or f"its supervisor exited with status {process.returncode}: {boot.log_tail()}"
            raise RunError(f"qemu of {state.path.name} did not start: {why}")
        return boot

    def _follow(self) -> None:
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                event = json.loads(line)
                with self._changed:
                    if event["event"] == "machine":
                        self.accelerator, self.accelerator_note = event["accelerator"], event["note"]
                        for pid in event["helpers"]:
                            self.state.record_process(pid)
                    elif event["event"] == "spawned":
                        self.qemu_pid = event["pid"]
                        self.state.record_process(event["pid"])
                    elif event["event"] == "exited":
                        self.returncode = event["status"]
                        self._qemu_exited.set()
                    elif event["event"] == "error":
                        self.error = event["message"]
                    self._changed.notify_all()
        finally:
            self.process.wait()
            with self._changed:
                self._qemu_exited.set()
                self._changed.notify_all()

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.state.path / "supervisor.log").read_text(errors="replace").strip()[-2000:]
        return ""

    def exit_report(self) -> str:
        """Once qemu is gone: how it ended and the end of what it printed (qemu.log), for an error."""
        code = self.returncode
        if code is None:
            how = "qemu is gone (its supervisor did not report its status)"
        elif code < 0:
            how = f"qemu was killed by {signal.Signals(-code).name}"
        else:
            how = f"qemu exited with status {code}"
        with contextlib.suppress(OSError):
            lines = [line for line in (self.state.path / "qemu.log").read_text(errors="replace").splitlines()
                     if line.strip()][-QEMU_LOG_TAIL_LINES:]
            if lines:
                return how + "; it printed:\n" + "\n".join(f"    {line}" for line in lines)
        return how + " (it printed nothing)"

    def raise_if_gone(self, error: Exception, *, since: int) -> None:
        """For an error that may mean qemu is gone (the readiness port or the SSH socket closed): QemuCrashed
        if qemu crashed, a ConnectionError that says how it ended and what it printed if it exited otherwise."""
        if not self.wait(EXIT_REPORT_WAIT):
            return  # qemu runs: the error is the guest's
        report = self.exit_report()
        if self.crashed():
            raise QemuCrashed(report, since=since) from None
        raise ConnectionError(f"{str(error) or type(error).__name__}; {report}") from None

    def crashed(self) -> bool:
        """Whether qemu died of a crash signal of its own (CRASH_SIGNALS)."""
        return self.returncode is not None and self.returncode < 0 and -self.returncode in CRASH_SIGNALS

    def is_running(self) -> bool:
        return self.qemu_pid is not None and not self._qemu_exited.is_set()

    def wait(self, timeout: float) -> bool:
        """Whether qemu exited within `timeout` seconds."""
        return self._qemu_exited.wait(timeout)

    def kill(self) -> None:
        """End qemu now: SIGTERM to the supervisor (which stops qemu, killing it if it must); SIGKILL to all
        of them if that does not end it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_GRACE + 5)
        if self.process.poll() is None:
            kill_tree(self.process.pid)
            self.process.wait()
        self._thread.join(10)

    def close(self) -> None:
        """After qemu exited: wait for the supervisor to stop the helpers and go, and close the session's pipe."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_GRACE)
        if self.process.poll() is None:
            self.kill()
        self._thread.join(10)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
