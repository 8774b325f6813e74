"""Facts about the machine imagebuild runs on that defaults and [Match] conditions depend on.

Each is read once and cached; tests replace them with set_host().
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from imagebuild.config.enums import Architecture, Distribution


@dataclass(frozen=True)
class HostFacts:
    distribution: Distribution | None
    release: str | None
    architecture: Architecture | None
    # None: not known yet (systemctl is only run when a SystemdVersion= condition needs it).
    systemd_version: str | None = None


_ID_TO_DISTRIBUTION = {
    "fedora": Distribution.fedora,
    "debian": Distribution.debian,
    "ubuntu": Distribution.ubuntu,
    "arch": Distribution.arch,
    "opensuse": Distribution.opensuse,
    "opensuse-tumbleweed": Distribution.opensuse,
    "opensuse-leap": Distribution.opensuse,
    "mageia": Distribution.mageia,
    "centos": Distribution.centos,
    "rhel": Distribution.rhel,
    "openmandriva": Distribution.openmandriva,
    "rocky": Distribution.rocky,
    "almalinux": Distribution.alma,
    "alma": Distribution.alma,
}


def parse_os_release(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.strip().partition("=")
        if not eq or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[key.strip()] = value
    return fields


def distribution_from_os_release(fields: dict[str, str]) -> tuple[Distribution | None, str | None]:
    dist = None
    for candidate in [fields.get("ID", ""), *fields.get("ID_LIKE", "").split()]:
        if candidate in _ID_TO_DISTRIBUTION:
            dist = _ID_TO_DISTRIBUTION[candidate]
            break
    release = fields.get("VERSION_ID")
    # Debian and Ubuntu releases are named by codename; Debian testing has no VERSION_ID at all.
    if dist in (Distribution.debian, Distribution.ubuntu):
        codename = fields.get("VERSION_CODENAME")
        if not codename and (m := re.search(r"\((.*?)\)", fields.get("VERSION", ""))):
            codename = m.group(1)
        release = codename or release
    return dist, release


def _detect() -> HostFacts:
    fields: dict[str, str] = {}
    for candidate in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
        try:
            fields = parse_os_release(candidate.read_text())
            break
        except OSError:
            continue
    dist, release = distribution_from_os_release(fields)
    return HostFacts(dist, release, Architecture.from_uname(os.uname().machine))


_facts: HostFacts | None = None


def host() -> HostFacts:
    global _facts
    if _facts is None:
        _facts = _detect()
    return _facts


def set_host(facts: HostFacts | None) -> None:
    """Replace the detected facts (None: detect again). For tests and for callers that know better."""
    global _facts
    _facts = facts


def systemd_version() -> str | None:
    """The host's systemd version as systemctl --version reports it, or None without systemd."""
    global _facts
    facts = host()
    if facts.systemd_version is not None:
        return facts.systemd_version
    import subprocess  # only needed for SystemdVersion= conditions

    try:
        out = subprocess.run(
            ["systemctl", "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.split()
    if len(words) < 2:
        return None
    _facts = HostFacts(facts.distribution, facts.release, facts.architecture, words[1])
    return words[1]
