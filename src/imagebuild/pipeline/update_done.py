"""Mark /etc and /var up to date with /usr at build time, as systemd-update-done.service does at boot.

Units with ConditionNeedsUpdate=/etc or /var (ldconfig, systemd-sysusers, systemd-journal-catalog-update,
systemd-hwdb-update, systemd-update-done) run whenever /usr is newer than /etc/.updated or /var/.updated.
An image built without those files redoes their work on every boot from a fresh copy, and every test
machine boots from a throw-away overlay: under TCG that cost 10-20 s of guest CPU per boot. So the build
does the work itself, with the image's own programs, after the finalize scripts (the last step that may
change libraries, users, catalogs or hwdb files), then writes both files with /usr's modification time.
An image whose /usr is updated later (a newer mtime) still runs the units, exactly as systemd intends.

Written only when every unit of the image with such a condition is one whose work is done here: an unknown
unit keeps its first-boot run. Not for extension images and Overlay= (they carry no /etc and /var of
their own). mkosi v22 (up to v26) leaves the files out: this changes image content.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.log import logger
from imagebuild.pipeline import system_setup
from imagebuild.pipeline.image_sandbox import image_has_program, image_path, run_in_image

if TYPE_CHECKING:
    from imagebuild.context import Context

UNIT_DIRECTORIES = ("usr/lib/systemd/system", "lib/systemd/system", "etc/systemd/system")
CONDITION = re.compile(r"^\s*ConditionNeedsUpdate\s*=", re.MULTILINE)
# Formats whose tree is not a whole system with /etc and /var of its own.
NOT_A_SYSTEM = frozenset({"sysext", "confext", "portable", "none"})


def _ldconfig(context: Context) -> None:
    if image_has_program(context.root, "ldconfig"):
        # -X: as ldconfig.service runs it (the links were made by the package manager).
        run_in_image(context, ["ldconfig", "-X"], what="ldconfig")
        # Only a speed-up for the next ldconfig, and it holds inode numbers and ctimes: left in, two builds of
        # the same config would differ (mkosi_rebuild == mkosi_image caught it).
        (context.root / "var/cache/ldconfig/aux-cache").unlink(missing_ok=True)


def _catalog(context: Context) -> None:
    if image_has_program(context.root, "journalctl"):
        run_in_image(context, ["journalctl", "--update-catalog"], what="journalctl --update-catalog")


def _hwdb_stale(root: Path) -> bool:
    """Whether a hwdb.d file is newer than the database the hwdb stage compiled (a finalize script's)."""
    database = image_path(root, "usr/lib/udev/hwdb.bin")
    if database is None:
        return True
    built = database.stat().st_mtime_ns
    for directory in ("usr/lib/udev/hwdb.d", "etc/udev/hwdb.d"):
        found = image_path(root, directory)
        if found is not None and any(f.stat().st_mtime_ns > built for f in found.glob("*.hwdb")):
            return True
    return False


def _hwdb(context: Context) -> None:
    if _hwdb_stale(context.root):
        system_setup.run_hwdb(context)


def _nothing(context: Context) -> None:
    pass


# The units systemd ships with ConditionNeedsUpdate=, and what does their work at build time.
BUILD_TIME_WORK = {
    "ldconfig.service": _ldconfig,
    "systemd-sysusers.service": system_setup.run_sysusers,
    "systemd-journal-catalog-update.service": _catalog,
    "systemd-hwdb-update.service": _hwdb,
    # The unit that writes the two files: this stage.
    "systemd-update-done.service": _nothing,
}


def units_needing_update(root: Path) -> set[str]:
    """The names of the image's units that have a ConditionNeedsUpdate= line."""
    found = set()
    for directory in UNIT_DIRECTORIES:
        units = image_path(root, directory)
        if units is None or not units.is_dir():
            continue
        for unit in units.iterdir():
            if unit.is_file() and CONDITION.search(unit.read_text(errors="replace")):
                found.add(unit.name)
    return found


def write_stamp(path: Path, usr_mtime_ns: int) -> None:
    # The time is kept twice, as systemd does: as the file's mtime, and in the file for file systems that
    # keep no nanoseconds.
    path.write_text("# /etc and /var are up to date with the /usr of this modification time (imagebuild)\n"
                    f"TIMESTAMP_NSEC={usr_mtime_ns}\n")
    os.utime(path, ns=(usr_mtime_ns, usr_mtime_ns))


def mark_up_to_date(context: Context) -> None:
    config = context.config
    if str(config.format) in NOT_A_SYSTEM or config.overlay:
        return
    root = context.root
    usr, etc, var = (image_path(root, name) for name in ("usr", "etc", "var"))
    if usr is None or etc is None or var is None:
        return
    units = units_needing_update(root)
    if not units:
        return
    unknown = sorted(units - set(BUILD_TIME_WORK))
    if unknown:
        logger.info("/etc/.updated and /var/.updated not written: %s need their first-boot run",
                    ", ".join(unknown))
        return
    for unit in sorted(units):
        BUILD_TIME_WORK[unit](context)
    usr_mtime = usr.stat().st_mtime_ns
    for directory in (etc, var):
        write_stamp(directory / ".updated", usr_mtime)
