"""qemu: boot the image in a virtual machine, its serial console on this terminal (Ctrl-a x quits).

While it runs, `imagebuild ssh` reaches it without a network (imagebuild.launch.guest_ssh: vsock where the
host has it, else a virtio-serial port); where is recorded in the output directory (runtime_state).
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.launch import guest_ssh
from imagebuild.launch.lifetime import make_scratch, unwind_on_termination
from imagebuild.launch.qemu import SCRATCH_PREFIX, QemuOptions, check_bootable, qemu_machine
from imagebuild.launch.runtime_state import RuntimeState, run_recorded
from imagebuild.launch.vsock import free_cid, ssh_transport
from imagebuild.log import logger
from imagebuild.pipeline.subbuilds import tools_tree_for
from imagebuild.verbs import build_if_needed, main_image, need_root

if TYPE_CHECKING:
    from imagebuild.config import Args, Config


def split_kernel_argument(cmdline: list[str]) -> tuple[Path | None, list[str]]:
    """`imagebuild qemu -kernel FILE ...`: the kernel to boot, and the other arguments for qemu."""
    kernel: Path | None = None
    rest: list[str] = []
    words = iter(cmdline)
    for word in words:
        if word == "-kernel":
            value = next(words, None)
            if value is not None:
                kernel = Path(value)
                continue
        rest.append(word)
    return kernel, rest


def ssh_channel(config: Config, scratch: Path) -> tuple[guest_ssh.GuestChannel, guest_ssh.SshKeys]:
    """The SSH channel of `imagebuild ssh`; sshd restarts slowly while nobody is connected."""
    transport = ssh_transport(config)  # QemuVsock=yes on a host without vhost-vsock fails before any key
    keys = guest_ssh.make_keys(scratch / "ssh")
    if transport == "vsock":
        return guest_ssh.vsock_channel(free_cid(), keys, notify_port=None), keys
    return guest_ssh.virtio_serial_channel(scratch, keys, readiness=False, restart_seconds=2.0), keys


def runtime_state(channel: guest_ssh.GuestChannel, keys: guest_ssh.SshKeys) -> RuntimeState:
    return RuntimeState(
        pid=os.getpid(), transport=channel.kind, key=str(keys.client_key),
        known_hosts=str(keys.client_key.parent / "known_hosts"), host_key_alias=guest_ssh.HOST_KEY_ALIAS,
        ssh_socket=str(channel.ssh_socket) if channel.ssh_socket else None, cid=channel.cid,
        port=channel.ssh_port,
    )


def run(args: Args, images: list[Config]) -> int:
    need_root(args.verb)
    config = main_image(images)
    # Before building: a format qemu cannot boot is refused at once.
    check_bootable(config)
    build_if_needed(args, images)
    tools_tree = tools_tree_for(config)
    kernel, extra = split_kernel_argument(list(args.cmdline))
    # SIGHUP: the terminal went away (pexpect's terminate() sends it first).
    previous = {sig: signal.signal(sig, unwind_on_termination) for sig in (signal.SIGTERM, signal.SIGHUP)}
    scratch = make_scratch(paths.workspace_parent(config), SCRATCH_PREFIX)
    try:
        channel, keys = ssh_channel(config, scratch)
        options = QemuOptions(extra_args=[*channel.qemu_args, *extra], kernel=kernel, scratch=scratch)
        with qemu_machine(config, tools_tree=tools_tree, options=options) as machine:
            logger.info("Booting %s in qemu (%s, firmware %s); Ctrl-a x quits; 'imagebuild ssh' logs in "
                        "over %s", config.output, machine.accelerator.upper(), machine.firmware, channel.kind)
            logger.debug("+ %s", " ".join(machine.argv))
            return run_recorded(config, runtime_state(channel, keys), machine.argv)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
