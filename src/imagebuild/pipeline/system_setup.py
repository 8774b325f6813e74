"""systemd-sysusers, systemd-tmpfiles, systemctl preset-all, depmod and systemd-hwdb on the image.

Each runs the image's own program on the image (build/image_sandbox.py says why); an image without the
program skips the step with a note, as there is then nothing for it to act on.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from imagebuild.log import logger
from imagebuild.pipeline.image_sandbox import image_has_program, image_path, run_in_image
from imagebuild.tools.run import CommandError

if TYPE_CHECKING:
    from imagebuild.context import Context

# API file systems and scratch space: what tmpfiles would create there only lives in the build sandbox.
TMPFILES_EXCLUDED = ("/dev", "/proc", "/sys", "/run", "/tmp", "/var/tmp")
# systemd-tmpfiles exits 65 (EX_DATAERR) for lines it cannot parse or resolve and 73 (EX_CANTCREAT) for
# paths it could not create; both are common and harmless in an image that has not booted yet (e.g. %m
# specifiers without a machine ID), so they are warnings, not build failures.
TMPFILES_TOLERATED_STATUS = frozenset({65, 73})


def _skip(context: Context, program: str, step: str) -> bool:
    if image_has_program(context.root, program):
        return False
    logger.info("the image has no %s: %s skipped", program, step)
    return True


def run_sysusers(context: Context) -> None:
    if _skip(context, "systemd-sysusers", "creating system users"):
        return
    run_in_image(context, ["systemd-sysusers"])


def tmpfiles_command() -> list[str]:
    # --boot: lines meant for boot time also apply, the image is being set up for its first boot.
    return [
        "systemd-tmpfiles", "--create", "--remove", "--boot",
        *(f"--exclude-prefix={prefix}" for prefix in TMPFILES_EXCLUDED),
    ]


def exit_status(error: CommandError) -> int | None:
    match = re.search(r"exit status (\d+)", str(error))
    return int(match.group(1)) if match else None


def run_tmpfiles(context: Context) -> None:
    if _skip(context, "systemd-tmpfiles", "creating tmpfiles.d entries"):
        return
    try:
        run_in_image(context, tmpfiles_command())
    except CommandError as e:
        if exit_status(e) not in TMPFILES_TOLERATED_STATUS:
            raise
        problems = [line for line in e.output.splitlines() if line.strip()]
        logger.warning("systemd-tmpfiles skipped some entries:\n  %s", "\n  ".join(problems[-10:]))


def run_preset_all(context: Context) -> None:
    if _skip(context, "systemctl", "enabling units by preset"):
        return
    run_in_image(context, ["systemctl", "preset-all"], what="systemctl preset-all")
    # User units too (systemd --user of every user), as the image's presets may name them.
    run_in_image(context, ["systemctl", "--global", "preset-all"], what="systemctl --global preset-all")


def installed_kernel_versions(context: Context) -> list[str]:
    """The kernel versions that have a module directory in the image, sorted."""
    modules = image_path(context.root, "usr/lib/modules")
    if modules is None or not modules.is_dir():
        return []
    return sorted(entry.name for entry in modules.iterdir() if entry.is_dir())


def run_depmod(context: Context) -> None:
    versions = installed_kernel_versions(context)
    if not versions:
        return
    if _skip(context, "depmod", f"module dependencies of kernel {', '.join(versions)} not generated"):
        return
    for version in versions:
        run_in_image(context, ["depmod", "--all", version], what=f"depmod for kernel {version}")


def run_hwdb(context: Context) -> None:
    if image_path(context.root, "usr/lib/udev/hwdb.d") is None:
        return
    if _skip(context, "systemd-hwdb", "hardware database not compiled"):
        return
    # --usr: the database goes to /usr/lib/udev/hwdb.bin, so images that ship only /usr have it too.
    run_in_image(context, ["systemd-hwdb", "--usr", "--strict", "update"])
