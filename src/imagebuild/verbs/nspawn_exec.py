"""shell and boot: systemd-nspawn on the built image.

`shell` execs systemd-nspawn. `boot` runs it as a child instead, so that it can give the container SSH
access without a network (imagebuild.launch.nspawn_ssh: an AF_UNIX socket in a bound host directory, keys
made for this boot) and keep a runtime record in the output directory while it runs: `imagebuild ssh`
then reaches the container as it reaches a machine of `imagebuild qemu`. The record, keys and sockets are
removed when the container exits. Each booted container runs in a cgroup of its own
(imagebuild.launch.nspawn_cgroup): two `imagebuild boot` at once would otherwise share their unit cgroups.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.errors import ImageBuildError
from imagebuild.launch.lifetime import make_scratch, unwind_on_termination
from imagebuild.launch.nspawn import NspawnOptions, nspawn_command
from imagebuild.launch.nspawn_cgroup import machine_cgroup
from imagebuild.launch.nspawn_ssh import UnixSshAccess, prepare_unix_ssh
from imagebuild.launch.runtime_state import RuntimeState, run_recorded
from imagebuild.launch.ssh_keys import HOST_KEY_ALIAS
from imagebuild.log import logger
from imagebuild.pipeline.pipeline import output_path
from imagebuild.verbs import build_if_needed, main_image, need_root

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

SCRATCH_PREFIX = "imagebuild-boot-"


def runtime_state(access: UnixSshAccess) -> RuntimeState:
    return RuntimeState(pid=os.getpid(), transport="unix", key=str(access.keys.client_key),
                        known_hosts=str(access.keys.known_hosts), host_key_alias=HOST_KEY_ALIAS,
                        ssh_socket=str(access.socket))


def exec_nspawn(args: Args, images: list[Config], *, boot: bool) -> int:
    need_root(args.verb)
    build_if_needed(args, images)
    config = main_image(images)
    if str(config.format) != "directory":
        raise ImageBuildError(f"'{args.verb}' needs Format=directory for now (this image is Format={config.format})")
    if boot:
        return boot_with_ssh(config, list(args.cmdline))
    argv = nspawn_command(config, output_path(config), NspawnOptions(boot=False), args.cmdline)
    logger.debug("+ %s", " ".join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def boot_with_ssh(config: Config, cmdline: list[str]) -> int:
    """Boot the container on this terminal, reachable with `imagebuild ssh` while it runs."""
    # SIGHUP: the terminal went away.
    previous = {sig: signal.signal(sig, unwind_on_termination) for sig in (signal.SIGTERM, signal.SIGHUP)}
    scratch = make_scratch(paths.workspace_parent(config), SCRATCH_PREFIX)
    cgroup = machine_cgroup(f"boot-{os.getpid()}")  # None: nspawn splits this process's cgroup, as before
    try:
        access = prepare_unix_ssh(scratch)
        options = NspawnOptions(boot=True, binds=access.binds)
        argv = nspawn_command(config, output_path(config), options, [*access.init_args, *cmdline])
        logger.info("Booting %s in a container; 'imagebuild ssh' logs in over %s", config.output, access.socket)
        logger.debug("+ %s", " ".join(argv))
        if cgroup is not None:
            cgroup.create()
        return run_recorded(config, runtime_state(access), argv, enter=cgroup.enter if cgroup else None)
    finally:
        if cgroup is not None:
            cgroup.remove()
        shutil.rmtree(scratch, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
