"""systemd-nspawn command lines for a directory image."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.tools.run import find_tool

if TYPE_CHECKING:
    from imagebuild.config import Config


def host_runs_systemd() -> bool:
    """Whether the host's PID 1 is systemd (then nspawn can register machines and make scopes)."""
    return Path("/run/systemd/system").is_dir()


def machine_name(config: Config) -> str:
    """A valid machine name: Hostname=, else ImageId=, else the output name."""
    name = config.hostname or config.image_id or config.output
    name = re.sub(r"[^A-Za-z0-9-]", "-", name).strip("-")
    return name[:64] or "imagebuild"


@dataclass
class NspawnOptions:
    boot: bool = True
    machine: str | None = None
    ephemeral: bool = False
    # Overlay a tmpfs over the tree so a shared image is never written to (lost when nspawn exits).
    volatile_overlay: bool = False
    # Overlay this host directory over the tree instead: the image is never written to, and the changes
    # survive the guest's reboots (each reboot ends systemd-nspawn, which is then started again).
    overlay_upper: Path | None = None
    # A network namespace of its own, so nothing in the guest listens on the host's ports.
    private_network: bool = False
    # With private_network: a veth link to the host (host0 in the guest).
    network_veth: bool = False
    console: str | None = None
    binds: list[tuple[Path, str]] = field(default_factory=list)
    read_only_binds: list[tuple[Path, str]] = field(default_factory=list)
    setenv: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)


def _escape_colons(path: Path) -> str:
    # --overlay= separates its paths with colons; nspawn reads a backslash-escaped colon as part of a path.
    return os.fspath(path).replace("\\", "\\\\").replace(":", "\\:")


def nspawn_command(config: Config, tree: Path, options: NspawnOptions, args: Sequence[str] = ()) -> list[str]:
    """argv for systemd-nspawn on `tree`; `args` go to init (boot) or are the command (shell)."""
    argv = [
        find_tool("systemd-nspawn", package="systemd-container"),
        "--quiet",
        f"--directory={os.fspath(tree)}",
        f"--machine={options.machine or machine_name(config)}",
    ]
    if not host_runs_systemd():
        # Without systemd on the host there is no machined to register with and no scope to move into.
        argv += ["--register=no", "--keep-unit"]
    if options.boot:
        argv.append("--boot")
    if options.ephemeral or config.ephemeral:
        argv.append("--ephemeral")
    elif options.overlay_upper is not None:
        argv.append(f"--overlay={_escape_colons(tree)}:{_escape_colons(options.overlay_upper)}:/")
    elif options.volatile_overlay:
        argv.append("--volatile=overlay")
    if options.private_network or options.network_veth:
        argv.append("--private-network")
    if options.network_veth:
        argv.append("--network-veth")
    if options.console:
        argv.append(f"--console={options.console}")
    for source, target in options.binds:
        argv.append(f"--bind={source}:{target}")
    for source, target in options.read_only_binds:
        argv.append(f"--bind-ro={source}:{target}")
    for tree_spec in config.runtime_trees:
        mount_point = tree_spec.target or Path("/root/src") / tree_spec.source.name
        argv.append(f"--bind={tree_spec.source}:{mount_point}")
    for key, value in options.setenv.items():
        argv.append(f"--setenv={key}={value}")
    argv += options.extra
    if args:
        if not options.boot:
            argv.append("--")
        argv += list(args)
    return argv
