"""SELinuxRelabel=: label the image's files for its SELinux policy with setfiles (after RemoveFiles=, before the
finalize scripts, as mkosi v22 does).

As v22: the policy is the image's /etc/selinux/config SELINUXTYPE=; its file contexts are
/etc/selinux/<policy>/contexts/files/file_contexts and the binary policy the newest policy.<version> in
/etc/selinux/<policy>/policy/. `setfiles -m -F -r <root> -c <policy> <file_contexts> <root>` writes the
security.selinux extended attributes (-m: not looking at this host's mounts, -F: also files labelled
already, -c: contexts checked against the image's policy, not the host's; this host need not run SELinux).
SELinuxRelabel=yes fails when any of that is missing or setfiles fails; auto quietly skips what is missing
and only warns when setfiles fails.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot.toolchain import run_tool, tool
from imagebuild.config.enums import ConfigFeature
from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.tools.run import CommandError

if TYPE_CHECKING:
    from imagebuild.context import Context

CONFIG = "etc/selinux/config"


@dataclass(frozen=True)
class Policy:
    name: str
    file_contexts: Path
    binary: Path


def policy_name(config_file: Path) -> str:
    """SELINUXTYPE= of /etc/selinux/config (a shell fragment; the last assignment wins, as when sourced)."""
    name = ""
    for line in config_file.read_text(errors="replace").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        for word in words:
            key, sep, value = word.partition("=")
            if sep and key == "SELINUXTYPE":
                name = value
    return name


def newest_binary_policy(directory: Path) -> Path | None:
    """policy.<N> with the highest N (the policy format version); suffixes that are not digits are skipped."""
    candidates = [p for p in directory.glob("policy.*") if p.suffix[1:].isascii() and p.suffix[1:].isdigit()]
    return max(candidates, key=lambda p: int(p.suffix[1:]), default=None)


def find_policy(context: Context) -> Policy | None:
    """The policy to label with, or None when the image has none (an error with SELinuxRelabel=yes)."""
    setting = context.config.selinux_relabel
    if setting == ConfigFeature.disabled:
        return None

    def absent(problem: str) -> None:
        if setting == ConfigFeature.enabled:
            raise BuildError(f"SELinuxRelabel=yes: {problem}; install the policy (selinux-policy-default on "
                             "Debian) or set SELinuxRelabel=auto or no")
        logger.debug("SELinuxRelabel=auto: not relabelling: %s", problem)

    root = context.root
    if not (root / CONFIG).is_file():
        absent(f"the image has no /{CONFIG}")
        return None
    name = policy_name(root / CONFIG)
    if not name:
        absent(f"/{CONFIG} names no policy (SELINUXTYPE=)")
        return None
    file_contexts = root / "etc/selinux" / name / "contexts/files/file_contexts"
    if not file_contexts.is_file():
        absent(f"the {name} policy has no file contexts (/{file_contexts.relative_to(root)})")
        return None
    binary = newest_binary_policy(root / "etc/selinux" / name / "policy")
    if binary is None:
        absent(f"the {name} policy has no binary policy (/etc/selinux/{name}/policy/policy.<version>)")
        return None
    return Policy(name, file_contexts, binary)


def relabel(context: Context) -> None:
    policy = find_policy(context)
    if policy is None:
        return
    enabled = context.config.selinux_relabel == ConfigFeature.enabled
    try:
        setfiles = tool(context, "setfiles", package="policycoreutils")
    except BuildError as e:
        if enabled:
            raise
        logger.warning("SELinuxRelabel=auto: not relabelling for the %s policy: %s", policy.name, e)
        return
    argv: list[str | Path] = [setfiles, "-mFr", context.root, "-c", policy.binary, policy.file_contexts, context.root]
    try:
        run_tool(context, argv, what="setfiles")
    except CommandError as e:
        if enabled:
            raise
        logger.warning("SELinuxRelabel=auto: relabelling for the %s policy failed: %s", policy.name, e)
        return
    logger.info("Relabelled the image's files for the SELinux policy %s (%s)", policy.name, policy.binary.name)
