"""SSH host keys do not belong in images: every machine booted from one would share them, and they make
two builds of the same config differ (openssh-server generates them when it is installed).

The keys a package install generated are removed; the image then generates its own at boot. Debian's
openssh-server ships sshd-keygen.service (`ssh-keygen -A`, ConditionFirstBoot=yes), which runs on the
first boot only, and systemd counts a boot as the first only when /etc/machine-id is missing or
"uninitialized", not when it is empty as mmdebstrap leaves it. Where no such unit would run, a small unit
of ours does the same before sshd, whenever the keys are missing. Keys the user put into the image on
purpose (SkeletonTrees=, ExtraTrees=, or later in a finalize script) are kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.log import logger
from imagebuild.pipeline.image_sandbox import image_path

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

HOST_KEY = re.compile(r"ssh_host_[a-z0-9]+_key(\.pub|-cert\.pub)?")
UNIT_DIRECTORY = "usr/lib/systemd/system"
UNIT = "imagebuild-ssh-host-keys.service"
# The units that start sshd on the distributions we build (socket-activated and not).
SSHD_UNITS = ("ssh.service", "sshd.service", "sshd@.service", "ssh.socket", "sshd.socket")

# No default dependencies: ssh.socket starts before basic.target, and a unit ordered after basic.target (as
# default dependencies would) but before the socket is an ordering cycle, which systemd breaks by dropping this
# job: sshd then starts without keys and fails once (seen in a trixie container).
UNIT_TEXT = """\
[Unit]
Description=Generate the SSH host keys (the image is built without them)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
ConditionPathIsReadWrite=/etc/ssh
DefaultDependencies=no
After=local-fs.target
Conflicts=shutdown.target
Before=shutdown.target
Before={before}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=ssh-keygen -A
"""


def _from_user_trees(config: Config, relative: str) -> bool:
    """Whether a skeleton or extra tree (directories only) provides /relative."""
    wanted = Path("/") / relative
    for tree in (*config.skeleton_trees, *config.extra_trees):
        target = Path(tree.target) if tree.target is not None else Path("/")
        source = Path(tree.source)
        if source.is_dir() and wanted.is_relative_to(target):
            candidate = source / wanted.relative_to(target)
            if candidate.exists() or candidate.is_symlink():
                return True
    return False


def _first_boot(root: Path) -> bool:
    """Whether systemd will treat the image's first boot as such (ConditionFirstBoot=yes holds): only when
    /etc/machine-id is missing or says "uninitialized"; an empty one (as mmdebstrap leaves it) means a
    transient machine ID, and then sshd-keygen.service never runs (seen in a trixie container)."""
    machine_id = image_path(root, "etc/machine-id")
    if machine_id is None or not machine_id.is_file():
        return True
    return machine_id.read_text(errors="replace").strip() == "uninitialized"


def _generator_runs(root: Path) -> bool:
    """Whether a unit of the image runs `ssh-keygen -A` at boot (and its first-boot condition holds)."""
    units = image_path(root, UNIT_DIRECTORY)
    if units is None or not units.is_dir():
        return False
    for unit in sorted(units.glob("*.service")):
        if unit.name == UNIT or not unit.is_file():
            continue
        text = unit.read_text(errors="replace")
        if "ssh-keygen -A" not in text:
            continue
        if "ConditionFirstBoot=yes" in text and not _first_boot(root):
            continue
        return True
    return False


def _install_unit(root: Path) -> None:
    units = root / UNIT_DIRECTORY
    present = [u for u in SSHD_UNITS if (units / u).exists()]
    (units / UNIT).write_text(UNIT_TEXT.format(before=" ".join(present or SSHD_UNITS)))
    for name in present:
        wants = units / f"{name}.wants"
        wants.mkdir(exist_ok=True)
        link = wants / UNIT
        if not link.is_symlink():
            link.symlink_to(f"../{UNIT}")


def remove_host_keys(context: Context) -> None:
    root = context.root
    ssh = image_path(root, "etc/ssh")
    if ssh is None or not ssh.is_dir():
        return
    removed = []
    for key in sorted(ssh.iterdir()):
        if HOST_KEY.fullmatch(key.name) and not _from_user_trees(context.config, f"etc/ssh/{key.name}"):
            key.unlink()
            removed.append(key.name)
    if not removed:
        return
    logger.info("removed SSH host keys (the image generates its own at boot): %s", ", ".join(removed))
    if not _generator_runs(root):
        _install_unit(root)
        logger.info("installed %s to generate them before sshd starts", "/" + os.path.join(UNIT_DIRECTORY, UNIT))
