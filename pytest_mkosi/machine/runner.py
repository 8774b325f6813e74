"""The contract between the Machine API (machine/api.py) and the runners (runners/nspawn.py, runners/qemu.py).

A runner knows how to start, reach and stop one kind of machine; everything a test calls (run, succeed,
wait_for_unit, reboot, journal, ...) is written once in machine/ on top of these primitives. machine/ never
imports runners/; runners subclass `Runner`.

Runners are constructed as `RunnerClass(config, image, *, name)`: the resolved imagebuild Config, the built
image (a directory tree or an image file) and a name from machine.state.unique_machine_name(). Their state
directory comes from machine.state.StateDir.create(name), whose reaper stops the processes recorded with
StateDir.record_process() and removes the directory if the session dies without calling stop().
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.launch.runtime_state import RuntimeState
    from pytest_mkosi.transport.ssh import SshConnection


class Runner(abc.ABC):
    """One machine as its runner sees it."""

    # A name unique among all machines running on this host (xdist workers and concurrent sessions included).
    name: str
    # "nspawn" or "qemu".
    kind: str
    # "kvm" or "tcg" for qemu, None for containers.
    accelerator: str | None
    # Per-machine directory (keys, sockets, console log, overlays); removed by stop() unless kept.
    state_dir: Path
    # Everything the machine's console printed, across reboots (appended to while the machine runs).
    console_log_path: Path
    # Whether the machine keeps running when this process ends, once its state directory is marked kept
    # (machine.state.keep(): --mkosi-keep-on-failure). A runner whose processes die with the session (a parent
    # death signal, a console held by the session) leaves it False; the plugin then says it cannot keep it.
    can_outlive_session: bool = False
    # How long start() and a reboot may take unless the caller says otherwise (Machine.boot_timeout).
    boot_timeout: float = 120.0
    # Boots cut and started again because the guest's kernel stalled for good (runners/stall.py).
    stalled_boots: int = 0
    # Restores whose SSH session saved with the machine could not be replayed (a fresh sshd took over, slower).
    restore_fallbacks: int = 0

    @abc.abstractmethod
    def start(self, *, timeout: float) -> None:
        """Boot the machine and return when it answers over SSH (raise RunError with the console tail if not).

        Also boots it again after shutdown or power_off_hard(), keeping its disk/overlay state."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Power off and kill everything of this machine (processes, state); safe to call twice."""

    @abc.abstractmethod
    def connection(self) -> SshConnection:
        """The live SSH transport, connected again first if the guest rebooted by itself (raise
        ConnectionError when the machine is not running)."""

    @abc.abstractmethod
    def wait_rebooted(self, *, timeout: float) -> None:
        """After the guest was asked to reboot: wait until a new boot (not the one the current connection
        reached) answers over SSH again."""

    @abc.abstractmethod
    def power_off_hard(self) -> None:
        """Cut the power (crash()): no shutdown inside the guest. Returns when the machine is off."""

    @abc.abstractmethod
    def is_running(self) -> bool:
        """Whether the machine's process (qemu, systemd-nspawn) is alive (or being restarted for a reboot)."""

    @abc.abstractmethod
    def send_console(self, text: str) -> None:
        """Type text on the machine's console."""

    @abc.abstractmethod
    def ssh_command(self) -> str:
        """A command line a person can paste to reach this machine while it runs."""

    def reconnect(self, *, timeout: float = 120.0, settle: bool = True) -> None:
        """Hang up the SSH connection and make a new one to the running boot: after release_ssh(), or when
        the stream stopped moving (Machine's backstop; `settle` False: no round trip before the hang-up)."""
        raise NotImplementedError(f"the {self.kind} runner cannot reconnect")

    def runtime_record(self) -> RuntimeState | None:
        """Where `imagebuild ssh` reaches this machine while it runs on without the session (a kept machine):
        the record imagebuild.launch.runtime_state keeps, whose pid is the process that goes when the
        machine stops. None: it cannot be reached that way."""
        return None

    def let_go(self) -> None:
        """The session leaves this machine running (kept): hand over what one user at a time can hold (qemu's
        one-stream SSH port), so that ssh_command() and `imagebuild ssh` get through."""
        return None  # nothing to hand over by default
