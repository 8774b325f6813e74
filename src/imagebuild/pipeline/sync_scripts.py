"""SyncScripts= (mkosi.sync): run before the image is built, on the host's side, to update the sources.

As in mkosi v22: each script runs as `<script> final` as the user who invoked imagebuild, with the network,
in the directory of the build sources (mounted writable at /work/src, never on BuildSourcesEphemeral='s
overlays: updating them is the point), the invoking user's home writable (git worktrees and ssh keys),
/run/user/<uid> and $SSH_AUTH_SOCK passed on, the config as JSON at $MKOSI_CONFIG and $CACHED saying whether
Incremental='s cached image is there. It sees no image: it runs before anything is installed, and before the
caches are looked up, so that what it changes in the sources counts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.log import logger
from imagebuild.pipeline import incremental, script_env
from imagebuild.pipeline.script_env import ScriptKind, ScriptPlaces
from imagebuild.pipeline.scripts import build_sources, config_json, configured_scripts
from imagebuild.tools.run import find_tool, run
from imagebuild.tools.sandbox import Mount, sandbox_argv

if TYPE_CHECKING:
    from imagebuild.context import Context

MOUNT_POINT = ScriptKind.sync.mount_point


def _caller_mounts(uid: int) -> list[Mount]:
    mounts = []
    home = script_env.invoking_home(uid)
    if home != Path("/") and home.is_dir():
        mounts.append(Mount(home, home))
    runtime = Path(f"/run/user/{uid}")
    if runtime.is_dir():
        mounts.append(Mount(runtime, runtime, read_only=True))
    return mounts


def _as_caller(command: list[str], uid: int, gid: int) -> list[str]:
    if uid == 0:
        return command
    setpriv = find_tool("setpriv", package="util-linux")
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *command]


def sync_argv(context: Context, script: Path, sources: list[Mount], *, cached: bool) -> list[str]:
    """The sandboxed command line of one sync script."""
    uid, gid = script_env.invoking_ids()
    places = ScriptPlaces(buildroot=Path("/"), helpers=Path("/"))
    env = script_env.script_environment(context.config, ScriptKind.sync, places, cached=cached)
    for name in ("SSH_AUTH_SOCK", "TERM"):
        if name in os.environ:
            env.setdefault(name, os.environ[name])
    mounts = [
        *sources,
        *_caller_mounts(uid),
        Mount(config_json(context), script_env.CONFIG_JSON, read_only=True),
        Mount(script, MOUNT_POINT, read_only=True),
    ]
    command = _as_caller([os.fspath(MOUNT_POINT), "final"], uid, gid)
    return sandbox_argv(command, mounts=mounts, env=env, network=True, cwd=script_env.SRC)


def run_sync_scripts(context: Context) -> None:
    scripts = configured_scripts(context.config, ScriptKind.sync)
    if not scripts:
        return
    cached = context.config.incremental and incremental.usable(context.config, log=False)
    with build_sources(context, ephemeral_allowed=False) as sources:
        for script in scripts:
            logger.info("  running sync script %s", script)
            output = run(sync_argv(context, script, sources, cached=cached), what=f"the sync script {script}")
            for line in output.splitlines():
                logger.info("    %s", line)
