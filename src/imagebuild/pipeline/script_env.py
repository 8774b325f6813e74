"""The environment of sync, prepare, build, post-install and finalize scripts (the man page's table).

Paths are the ones the script sees inside its sandbox: mkosi's layout below /work, which mkosi-chroot
mounts at the same places inside the image, so $X and $CHROOT_X have the same value.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.config import Config

WORK = Path("/work")
SRC = WORK / "src"
DEST = WORK / "dest"
BUILD = WORK / "build"
OUT = WORK / "out"
PACKAGES = WORK / "packages"
CONFIG_JSON = WORK / "config.json"


class ScriptKind(enum.Enum):
    """The kinds of scripts, with the path each is mounted at while it runs."""

    sync = "sync"
    prepare = "prepare"
    build = "build"
    postinst = "postinst"
    finalize = "finalize"

    @property
    def setting(self) -> str:
        return {
            ScriptKind.sync: "SyncScripts",
            ScriptKind.prepare: "PrepareScripts",
            ScriptKind.build: "BuildScripts",
            ScriptKind.postinst: "PostInstallationScripts",
            ScriptKind.finalize: "FinalizeScripts",
        }[self]

    @property
    def mount_point(self) -> Path:
        # mkosi's own names for the script inside the sandbox.
        return WORK / ("build-script" if self is ScriptKind.build else self.value)


@dataclass(frozen=True)
class ScriptPlaces:
    """Where this script's directories are on the host (None: not given to this script)."""

    buildroot: Path
    helpers: Path
    build_dir: Path | None = None


def invoking_ids() -> tuple[int, int]:
    """The uid and gid of the user who ran imagebuild (through sudo, the user sudo was run by)."""
    uid = os.environ.get("SUDO_UID")
    gid = os.environ.get("SUDO_GID")
    if uid and gid and uid.isdigit() and gid.isdigit():
        return int(uid), int(gid)
    return os.getuid(), os.getgid()


def invoking_home(uid: int) -> Path:
    """The home directory of the invoking user (sync scripts run as them, with their git and ssh setup)."""
    import pwd

    try:
        return Path(pwd.getpwuid(uid).pw_dir)
    except KeyError:
        return Path("/")


def _flag(value: bool) -> str:
    return "1" if value else "0"


def script_environment(
    config: Config, kind: ScriptKind, places: ScriptPlaces, *, host_path: str | None = None, cached: bool = False
) -> dict[str, str]:
    """Every variable the man page gives a script of this kind, on top of Environment= (and mkosi.env).

    cached: whether Incremental='s cached image is there ($CACHED, for sync scripts only)."""
    # Environment= and EnvironmentFiles= come first: the documented variables describe the build and
    # are not meant to be overridden (SOURCE_DATE_EPOCH, IMAGE_ID, IMAGE_VERSION are in config.environment).
    env = dict(config.environment)
    uid, gid = invoking_ids()
    path = host_path if host_path is not None else os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env.update({
        "ARCHITECTURE": str(config.architecture),
        "DISTRIBUTION": str(config.distribution),
        "RELEASE": config.release,
        "SRCDIR": str(SRC),
        "MKOSI_UID": str(uid),
        "MKOSI_GID": str(gid),
        "MKOSI_CONFIG": str(CONFIG_JSON),
    })
    if config.profile:
        env["PROFILE"] = str(config.profile)
    if kind is ScriptKind.sync:
        # Sync scripts run on the host's side, as the invoking user, before there is an image: no helpers,
        # no $BUILDROOT.
        env.update({"PATH": path, "HOME": str(invoking_home(uid)), "CACHED": _flag(cached)})
        return env
    env.update({
        "PATH": f"{places.helpers}:{path}",
        "HOME": "/root",
        "CHROOT_SRCDIR": str(SRC),
        "BUILDROOT": str(places.buildroot),
        "SCRIPT": str(kind.mount_point),
        "CHROOT_SCRIPT": str(kind.mount_point),
    })
    if kind in (ScriptKind.prepare, ScriptKind.build):
        env["WITH_DOCS"] = _flag(config.with_docs)
        env["WITH_TESTS"] = _flag(config.with_tests)
        env["WITH_NETWORK"] = _flag(config.with_network)
    if kind is ScriptKind.build:
        env["DESTDIR"] = str(DEST)
        env["CHROOT_DESTDIR"] = str(DEST)
        env["PACKAGEDIR"] = str(PACKAGES)
        if places.build_dir is not None:
            env["BUILDDIR"] = str(BUILD)
            env["CHROOT_BUILDDIR"] = str(BUILD)
    if kind in (ScriptKind.build, ScriptKind.postinst, ScriptKind.finalize):
        env["OUTPUTDIR"] = str(OUT)
        env["CHROOT_OUTPUTDIR"] = str(OUT)
    return env
