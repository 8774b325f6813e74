"""Prepare, build, post-install and finalize scripts, run isolated from the host.

Each script runs in a bubblewrap sandbox (tools/sandbox.py): the host is read-only; the workspace (with
the image root) and the script's own directories are writable; the network is there for
prepare scripts and, with WithNetwork=, for the others. Build packages and build scripts see the image
through an overlay whose upper directory (context.build_overlay) never reaches the final image.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.pipeline import script_env, script_packages
from imagebuild.pipeline.script_env import ScriptKind, ScriptPlaces
from imagebuild.tools.run import CommandError, run
from imagebuild.tools.sandbox import Mount, sandbox_argv

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

HELPERS = Path(__file__).parent / "script_helpers"
CHROOT_SUFFIX = ".chroot"


def configured_scripts(config: Config, kind: ScriptKind) -> list[Path]:
    scripts: list[Path] = {
        ScriptKind.sync: config.sync_scripts,
        ScriptKind.prepare: config.prepare_scripts,
        ScriptKind.build: config.build_scripts,
        ScriptKind.postinst: config.postinst_scripts,
        ScriptKind.finalize: config.finalize_scripts,
    }[kind]
    return [Path(p) for p in scripts]


def check_scripts(config: Config) -> None:
    """Every script (configured, or mkosi.* found by convention) must exist and be executable."""
    for kind in ScriptKind:
        for script in configured_scripts(config, kind):
            if not script.is_file():
                raise BuildError(f"{kind.setting}={script}: no such file")
            if not os.access(script, os.X_OK):
                raise BuildError(f"{kind.setting}={script}: the script is not executable; "
                                 f"make it so with: chmod +x {script}")


# ---- What every script run shares: the helpers and the config as JSON.

def _helpers_dir(context: Context) -> Path:
    # Copied so that their executable bits do not depend on how imagebuild was installed.
    target = context.workspace / "script-helpers"
    if not target.exists():
        shutil.copytree(HELPERS, target)
        for helper in target.iterdir():
            helper.chmod(0o755)
    return target


def config_json(context: Context) -> Path:
    from imagebuild.config import to_json_dict

    path = context.workspace / "script-config.json"
    path.write_text(json.dumps(to_json_dict(context.config), indent=4, sort_keys=True, default=str) + "\n")
    return path


def _runtime_paths() -> list[Path]:
    """What the Python helpers need from the host: the interpreter's prefix and imagebuild's own code."""
    import imagebuild

    return [Path(sys.prefix), Path(sys.base_prefix), Path(imagebuild.__file__).parent.parent]


@contextlib.contextmanager
def _overlay(lower: Path, upper: Path, work: Path, merged: Path) -> Iterator[Path]:
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    run(["mount", "-t", "overlay", "overlay", "-o", options, merged], what=f"mounting an overlay on {lower}")
    try:
        yield merged
    finally:
        run(["umount", merged], what=f"unmounting the overlay on {lower}")


@contextlib.contextmanager
def build_overlay_mounted(context: Context) -> Iterator[Path]:
    """The image with the build overlay on top, mounted in the workspace."""
    with _overlay(context.root, context.build_overlay, context.workspace / "build-overlay-work",
                  context.workspace / "build-root") as merged:
        yield merged


@contextlib.contextmanager
def build_sources(context: Context, *, ephemeral_allowed: bool = True) -> Iterator[list[Mount]]:
    """BuildSources= as mounts below /work/src, parents first; with BuildSourcesEphemeral= on overlays
    (unless not ephemeral_allowed: sync scripts update the real sources)."""
    config = context.config
    specs = sorted(config.build_sources, key=lambda s: str(s.target or ""))
    ephemeral = context.workspace / "sources"
    use_overlays = config.build_sources_ephemeral and ephemeral_allowed
    with contextlib.ExitStack() as stack:
        if use_overlays:
            # Registered first, so it runs after the overlays are unmounted: their changes are dropped.
            stack.callback(shutil.rmtree, ephemeral, True)
        mounts = []
        for index, spec in enumerate(specs):
            source = Path(spec.source)
            if not source.is_dir():
                raise BuildError(f"BuildSources={spec}: {source} is not a directory")
            target = script_env.SRC / (spec.target or "")
            if use_overlays:
                base = ephemeral / str(index)
                source = stack.enter_context(_overlay(source, base / "upper", base / "work", base / "merged"))
            mounts.append(Mount(source, target))
        yield mounts


# ---- Running one script.

_LABELS = {
    ScriptKind.sync: "sync script",
    ScriptKind.prepare: "prepare script",
    ScriptKind.build: "build script",
    ScriptKind.postinst: "post-installation script",
    ScriptKind.finalize: "finalize script",
}


def _host_path() -> str:
    # useradd, groupadd and friends live in sbin, which a user's PATH may lack.
    entries = os.environ.get("PATH", "").split(":")
    return ":".join(dict.fromkeys([e for e in entries if e] + ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]))


def script_mounts(context: Context, kind: ScriptKind, script: Path, sources: Sequence[Mount],
                  config_file: Path) -> list[Mount]:
    """What a script sees writable (and its own file and the config, read-only), in mount order."""
    mounts = [Mount(context.workspace, context.workspace), *sources]
    if kind is ScriptKind.build:
        mounts += [Mount(context.install_dir, script_env.DEST), Mount(context.packages_dir, script_env.PACKAGES)]
        if context.config.build_directory is not None:
            mounts.append(Mount(Path(context.config.build_directory), script_env.BUILD))
    if kind is not ScriptKind.prepare:
        mounts.append(Mount(context.staging, script_env.OUT))
    mounts += [
        Mount(config_file, script_env.CONFIG_JSON, read_only=True),
        Mount(script, kind.mount_point, read_only=True),
    ]
    return mounts


def script_network(config: Config, kind: ScriptKind) -> bool:
    # The man page gives prepare scripts network access; the others have it with WithNetwork=.
    return kind is ScriptKind.prepare or config.with_network


def script_argv(context: Context, kind: ScriptKind, script: Path, command: Sequence[str], *,
                buildroot: Path, sources: Sequence[Mount]) -> list[str]:
    """The sandboxed command line that runs command (the script, or a shell) for this script's stage."""
    config = context.config
    helpers = _helpers_dir(context)
    build_dir = Path(config.build_directory) if kind is ScriptKind.build and config.build_directory else None
    places = ScriptPlaces(buildroot=buildroot, helpers=helpers, build_dir=build_dir)
    host_path = _host_path()
    network = script_network(config, kind)
    env = script_env.script_environment(config, kind, places, host_path=host_path)
    env.update({
        "IMAGEBUILD_PYTHON": sys.executable,
        script_packages.SOCKET_VARIABLE: str(script_packages.socket_path(context)),
        "IMAGEBUILD_HOST_PATH": host_path,
        "IMAGEBUILD_NETWORK": "1" if network else "0",
    })
    if "TERM" in os.environ:
        env.setdefault("TERM", os.environ["TERM"])
    mounts = script_mounts(context, kind, script, sources, config_json(context))
    return sandbox_argv(command, mounts=mounts, env=env, network=network, cwd=script_env.SRC,
                        keep_visible=_runtime_paths())


def _script_command(kind: ScriptKind, script: Path, arguments: Sequence[str], helpers: Path) -> list[str]:
    if script.name.endswith(CHROOT_SUFFIX):
        return [str(helpers / "mkosi-chroot"), str(kind.mount_point), *arguments]
    return [str(kind.mount_point), *arguments]


def _debug_shell(context: Context, kind: ScriptKind, script: Path, *, buildroot: Path,
                 sources: Sequence[Mount]) -> None:
    """--debug-shell: an interactive shell in the image where the script failed; the build ends after it."""
    helpers = _helpers_dir(context)
    shell = "/bin/bash" if (buildroot / "bin/bash").exists() else "/bin/sh"
    logger.warning("%s %s failed: opening a shell in the image (exit it to end the build)", _LABELS[kind], script)
    argv = script_argv(context, kind, script, [str(helpers / "mkosi-chroot"), shell], buildroot=buildroot,
                       sources=sources)
    subprocess.run(argv, check=False)


def run_script(context: Context, kind: ScriptKind, script: Path, arguments: Sequence[str], *,
               buildroot: Path, sources: Sequence[Mount]) -> None:
    command = _script_command(kind, script, arguments, _helpers_dir(context))
    argv = script_argv(context, kind, script, command, buildroot=buildroot, sources=sources)
    logger.info("  running %s %s", _LABELS[kind], script)
    try:
        output = run(argv, what=f"the {_LABELS[kind]} {script}")
    except CommandError:
        if context.debug_shell:
            _debug_shell(context, kind, script, buildroot=buildroot, sources=sources)
        raise
    for line in output.splitlines():
        logger.info("    %s", line)


def run_scripts(context: Context, kind: ScriptKind, arguments: Sequence[str], *, buildroot: Path) -> None:
    scripts = configured_scripts(context.config, kind)
    if not scripts:
        return
    check_scripts(context.config)
    context.staging.mkdir(parents=True, exist_ok=True)
    with build_sources(context) as sources, script_packages.serving(context, buildroot):
        for script in scripts:
            run_script(context, kind, script, arguments, buildroot=buildroot, sources=sources)


# ---- The pipeline's stages.

def run_prepare_scripts_final(context: Context) -> None:
    run_scripts(context, ScriptKind.prepare, ["final"], buildroot=context.root)


def prepare_build_overlay(context: Context) -> None:
    """Steps 9-10: build packages into the overlay, then the prepare scripts with `build` on it."""
    config = context.config
    if not config.build_scripts:
        return
    from imagebuild.distributions import distribution_for

    context.build_overlay.mkdir(exist_ok=True)
    with build_overlay_mounted(context) as merged:
        if config.build_packages:
            distribution_for(config).install_packages(context, list(config.build_packages), root=merged)
        run_scripts(context, ScriptKind.prepare, ["build"], buildroot=merged)


def run_build_scripts(context: Context) -> None:
    config = context.config
    if not config.build_scripts:
        return
    if not context.build_overlay.exists():
        # A cached image was reused: the overlay of this build has yet to be made.
        prepare_build_overlay(context)
    context.install_dir.mkdir(exist_ok=True)
    context.packages_dir.mkdir(exist_ok=True)
    if config.build_directory is not None:
        Path(config.build_directory).mkdir(parents=True, exist_ok=True)
    with build_overlay_mounted(context) as merged:
        run_scripts(context, ScriptKind.build, context.build_script_arguments, buildroot=merged)


def install_build_output(context: Context) -> None:
    """Step 14: $DESTDIR into the image, following the image's directory symlinks (/bin → usr/bin)."""
    dest = context.install_dir
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    # tar rather than cp: bookworm's cp lacks --keep-directory-symlink.
    copy = ('tar -C "$1" --numeric-owner --xattrs --acls -cf - . | '
            'tar -C "$2" --numeric-owner --xattrs --acls --keep-directory-symlink -xpf -')
    run(["bash", "-o", "pipefail", "-c", copy, "copy", dest, context.root],
        what="copying the build scripts' $DESTDIR into the image")


def run_postinst_scripts(context: Context) -> None:
    run_scripts(context, ScriptKind.postinst, ["final"], buildroot=context.root)


def run_finalize_scripts(context: Context) -> None:
    run_scripts(context, ScriptKind.finalize, [], buildroot=context.root)
