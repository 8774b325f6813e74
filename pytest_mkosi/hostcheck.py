"""Whether this host can run a cell, and if not, a reason a person can act on (the plugin skips the cell).

Every check is cheap: no build, no boot. Mirror reachability is one TCP connect per host, remembered
for an hour in the plugin's cache directory so that sessions and xdist workers do not repeat it.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from imagebuild.config import Architecture, Config
from imagebuild.launch.kvm import kvm_device_usable, load_verdicts
from imagebuild.paths import user_cache_home

REACHABLE_FOR = 3600.0
CONNECT_TIMEOUT = 3.0
# qemu's name for an architecture where it is not the same as ours.
_QEMU_NAMES = {Architecture.x86_64: "x86_64", Architecture.arm64: "aarch64", Architecture.x86: "i386",
               Architecture.ppc64_le: "ppc64", Architecture.mips64_le: "mips64el", Architecture.mips_le: "mipsel",
               Architecture.parisc: "hppa"}
_memo: dict[str, str | None] = {}


def root_reason() -> str | None:
    if os.geteuid() != 0:
        return "building and booting images needs root: run pytest as root (e.g. with sudo)"
    return None


def qemu_name(architecture: Architecture) -> str:
    return _QEMU_NAMES.get(architecture, str(architecture))


def _tools_trees() -> list[Path]:
    tools = user_cache_home() / "imagebuild" / "tools"
    return sorted(p for p in tools.iterdir() if p.is_dir()) if tools.is_dir() else []


def qemu_system(architecture: Architecture) -> str | None:
    """Where qemu-system-<arch> is: on the host, or in a tools tree imagebuild has built."""
    name = f"qemu-system-{qemu_name(architecture)}"
    found = shutil.which(name)
    if found:
        return found
    for tree in _tools_trees():
        if (tree / "usr/bin" / name).exists():
            return str(tree / "usr/bin" / name)
    return None


def host_architecture() -> Architecture | None:
    return Architecture.from_uname(platform.machine())


def machine_reason(config: Config) -> str | None:
    """A machine of a foreign architecture needs qemu-system-<arch> (containers need the host's)."""
    if config.architecture == host_architecture():
        return None
    if qemu_system(config.architecture) is not None:
        return None
    name = f"qemu-system-{qemu_name(config.architecture)}"
    return (f"no {name} on this host to boot an {config.architecture} image (this host is "
            f"{host_architecture()}): install it (Debian: qemu-system-misc or qemu-system-arm) or add it to "
            "ToolsTreePackages=")


def kvm_reason() -> str | None:
    if not kvm_device_usable():
        return "needs KVM (@pytest.mark.mkosi_kvm), and /dev/kvm is missing or not accessible here"
    verdicts = load_verdicts(user_cache_home() / "imagebuild" / "kvm-verdict.json")
    if verdicts and not any(verdicts.values()):
        return ("needs KVM (@pytest.mark.mkosi_kvm), and KVM does not work here: a probe boot failed "
                "(see ~/.cache/imagebuild/kvm-verdict.json)")
    return None


def mirror_host(config: Config) -> tuple[str, int] | None:
    """The host and port the build downloads packages from; None when nothing is downloaded."""
    url = config.local_mirror or config.mirror
    if url is None:
        name = str(config.distribution)
        if name == "custom":
            return None
        try:
            module = importlib.import_module(f"imagebuild.distributions.{name.replace('-', '_')}")
        except ImportError:
            module = None
        # The distribution's own mirror, or where it looks mirrors up (metalinks, CDNs).
        url = getattr(module, "DEFAULT_MIRROR", None) or getattr(module, "DOWNLOAD_URL", None)
        if url is None:
            return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None  # file:, copy: ... local
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _verdict_file() -> Path:
    return user_cache_home() / "pytest-mkosi" / "reachable.json"


def _connect(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as e:
        return str(e) or type(e).__name__


def mirror_reason(config: Config) -> str | None:
    """Why the distribution's mirror cannot be used from here, or None when it answers."""
    target = mirror_host(config)
    if target is None:
        return None
    key = f"{target[0]}:{target[1]}"
    if key not in _memo:
        _memo[key] = _cached_verdict(key, target)
    problem = _memo[key]
    if problem is None:
        return None
    return (f"the {config.distribution} mirror {key} cannot be reached from this host ({problem}): set "
            "Mirror= or LocalMirror= to one that can")


def _cached_verdict(key: str, target: tuple[str, int]) -> str | None:
    path = _verdict_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    known = data.get(key)
    if isinstance(known, dict) and time.time() - float(known.get("at", 0)) < REACHABLE_FOR:
        problem = known.get("problem")
        return str(problem) if problem else None
    problem = _connect(*target)
    data[key] = {"at": time.time(), "problem": problem}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(path)
    except OSError:
        pass
    return problem
