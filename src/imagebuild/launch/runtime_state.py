"""Where a running machine can be reached: a record that `imagebuild qemu` and `imagebuild boot` write into
the output directory while the machine runs, and that `imagebuild ssh` reads. Mode 0600: it names a private key."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.errors import RunError
from imagebuild.launch.lifetime import die_with_parent, process_alive

if TYPE_CHECKING:
    from imagebuild.config import Config


@dataclass(frozen=True)
class RuntimeState:
    pid: int  # the process that runs the machine (the verb); the record is stale once it is gone
    transport: str  # "virtio-serial" or "vsock" (qemu), "unix" (nspawn's bound AF_UNIX socket)
    key: str  # the client's private key
    known_hosts: str  # the machine's pinned host key, as a known_hosts file
    host_key_alias: str
    ssh_socket: str | None = None  # virtio-serial: qemu's unix socket of the SSH port; unix: the socket
    cid: int | None = None  # vsock
    port: int | None = None  # vsock


def state_path(config: Config) -> Path:
    return paths.output_directory(config) / f".{config.output}.runtime.json"


def write_state(config: Config, state: RuntimeState) -> Path:
    path = state_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(state), f, indent=1)
    tmp.replace(path)
    return path


def remove_state(config: Config) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(config).unlink()


def read_state(config: Config) -> RuntimeState:
    """The record of the running machine, or a RunError saying how to start one."""
    path = state_path(config)
    try:
        data = json.loads(path.read_text())
        state = RuntimeState(**data)
    except FileNotFoundError:
        raise RunError(f"no machine of {config.output} is running (no {path}); start one with "
                       "'imagebuild qemu' or 'imagebuild boot' first") from None
    except (OSError, ValueError, TypeError) as e:
        raise RunError(f"{path} is unreadable ({e}); restart the machine") from None
    if not process_alive(state.pid):
        remove_state(config)
        raise RunError(f"the machine of {config.output} is no longer running (process {state.pid} is gone); "
                       "start it again ('imagebuild qemu' or 'imagebuild boot')")
    return state


def run_recorded(config: Config, state: RuntimeState, argv: list[str],
                 enter: Callable[[], None] | None = None) -> int:
    """Run a machine's process on this terminal until it exits, with its runtime record there meanwhile;
    `enter` runs in the child before the exec (e.g. to move it into the machine's cgroup)."""

    def preexec() -> None:
        die_with_parent()
        if enter is not None:
            enter()

    write_state(config, state)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        process = subprocess.Popen(argv, preexec_fn=preexec)
        try:
            return process.wait()
        finally:
            if process.poll() is None:
                # systemd-nspawn powers the container off; bwrap (the tools tree) takes qemu with it.
                process.terminate()
                process.wait()
    finally:
        remove_state(config)
