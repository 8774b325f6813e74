"""ssh: a shell (or the command given after the verb) in the machine `imagebuild qemu` or `imagebuild boot`
is running.

There is no network: ssh goes through imagebuild.launch.relay to the machine's vsock or virtio-serial port
(qemu) or its AF_UNIX socket (nspawn), found in the runtime record the verb keeps in the output directory
while the machine runs. A virtio-serial port carries one session at a time.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import RunError
from imagebuild.launch.relay import relay_command
from imagebuild.launch.runtime_state import RuntimeState, read_state
from imagebuild.launch.ssh_keys import ssh_argv
from imagebuild.verbs import main_image

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def command_line(state: RuntimeState, cmdline: list[str]) -> list[str]:
    if state.transport == "vsock":
        proxy = relay_command("vsock", str(state.cid), str(state.port))
    elif state.transport == "virtio-serial":
        # qemu's end of a virtio-serial port: one stream, passed on once a fresh sshd answers.
        proxy = relay_command("serial", state.ssh_socket or "")
    else:
        # The AF_UNIX socket bound into an nspawn container (a new sshd for every connection).
        proxy = relay_command("unix", state.ssh_socket or "")
    argv = ssh_argv(key=Path(state.key), known_hosts=Path(state.known_hosts), proxy=proxy)
    return [*argv, *cmdline]


def run(args: Args, images: list[Config]) -> int:
    state = read_state(main_image(images))
    if shutil.which("ssh") is None:
        raise RunError("the ssh verb needs OpenSSH's client: install the Debian package 'openssh-client'")
    argv = command_line(state, list(args.cmdline))
    sys.stdout.flush()
    os.execvp(argv[0], argv)
