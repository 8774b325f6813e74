"""ToolsTree=: a tree the build and run tools come from instead of the host.

Usage for code that runs tools (a build stage has a Context, a run verb a Config):

    from imagebuild.tools.tools_tree import require_tool, run_tool, tool

    repart = require_tool(context, "systemd-repart", minimum_version=254)   # fails with advice if too old
    run_tool(context, [repart, "--offline=yes", ...], what="systemd-repart")
    ukify = tool(context, "ukify", package="systemd-ukify")                  # path as the command sees it

`context` may be a build Context (context.tools_tree is set by Workspace.__enter__), a tools tree Path,
or None for the host. Outside a build, `imagebuild.pipeline.subbuilds.tools_tree_for(config)` gives
(building it if needed) the tree; this module never builds by itself, it is handed the pipeline's builder.
Commands run with the tree's /usr mounted over /usr in a private mount namespace (tools/run.py), so the
whole host file system is visible to them and host paths mean the same; paths below /usr (e.g.
/usr/share/OVMF, /usr/lib/systemd/boot/efi) are the tree's.

ToolsTree=default builds the tree with this builder's own pipeline (a Format=directory image of a derived
config) into the cache directory, keyed by distribution, release, mirror, repositories, packages and the
content of ToolsTreePackageManagerTrees= (the derived config's PackageManagerTrees=): a changed package
list builds a new tree, an unchanged one is reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from imagebuild import paths
from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.tools.run import CommandError, find_tool, run

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context, SubBuild

# Bump when the way a tree is built changes, so that old cached trees are not reused.
TREE_LAYOUT_VERSION = 1

# The man page's ToolsTree= table, Debian column, in trixie's package names; plus what that table leaves
# implicit (systemd-repart, systemd-boot-efi, bootctl in systemd-boot-tools, OVMF, swtpm-tools, tpm2-tools
# for systemd-measure's libtss2 ...); nothing of other distributions' package managers, which this builder
# cannot use.
DEBIAN_PACKAGES = (
    "acl", "apt", "attr", "bash", "btrfs-progs", "bubblewrap", "ca-certificates", "coreutils", "cpio",
    "cryptsetup-bin", "curl", "debian-keyring", "diffutils", "dosfstools", "e2fsprogs", "erofs-utils", "fdisk",
    "findutils", "grep", "grub-common", "grub-pc-bin", "ipxe-qemu", "jq", "kmod", "less", "mtools",
    "openssh-client", "openssl", "ovmf", "policycoreutils", "python3-pefile", "qemu-system-x86", "qemu-utils",
    "sbsigntool", "seabios", "sed", "socat", "squashfs-tools", "strace", "swtpm", "swtpm-tools", "systemd",
    "systemd-boot-efi", "systemd-boot-tools", "systemd-container", "systemd-repart", "systemd-ukify", "tar",
    "tpm2-tools", "udev", "util-linux", "virtiofsd", "xfsprogs", "xz-utils", "zstd",
)

# ToolsTreeRelease= defaults to the distribution's default release ("testing" for Debian); a moving
# target would rebuild the tree whenever testing changes. For Debian the tree is trixie: systemd 257,
# qemu 10.0 (measured to boot guests reliably under multi-threaded TCG here).
PINNED_RELEASES = {"debian": "trixie"}

PACKAGES_BY_DISTRIBUTION: dict[str, tuple[str, ...]] = {"debian": DEBIAN_PACKAGES}

ContextLike = Union["Context", Path, None]


def _tools_tree_of(where: ContextLike) -> Path | None:
    if where is None or isinstance(where, Path):
        return where
    return where.tools_tree


def tools_cache_directory(config: Config) -> Path:
    """CacheDirectory=/tools, else the per-user cache ($XDG_CACHE_HOME/imagebuild/tools)."""
    if config.cache_directory is not None:
        return Path(config.cache_directory) / "tools"
    return paths.user_cache_home() / "imagebuild" / "tools"


def tools_tree_release(config: Config) -> str:
    distribution = str(config.tools_tree_distribution or config.distribution)
    if "ToolsTreeRelease" not in config.non_default and distribution in PINNED_RELEASES:
        return PINNED_RELEASES[distribution]
    if config.tools_tree_release is None:
        raise BuildError(f"ToolsTreeRelease=: no default release for {distribution}; set one")
    return config.tools_tree_release


def tools_tree_spec(config: Config) -> dict[str, Any]:
    """Everything that decides a default tools tree's content; its hash names the cached tree."""
    distribution = str(config.tools_tree_distribution or config.distribution)
    defaults = PACKAGES_BY_DISTRIBUTION.get(distribution)
    if defaults is None:
        raise BuildError(
            f"ToolsTree=default: not supported yet for ToolsTreeDistribution={distribution} "
            f"(supported: {', '.join(PACKAGES_BY_DISTRIBUTION)}); set ToolsTreeDistribution=debian"
        )
    spec: dict[str, Any] = {
        "layout": TREE_LAYOUT_VERSION,
        "distribution": distribution,
        "release": tools_tree_release(config),
        "mirror": config.tools_tree_mirror,
        "repositories": list(config.tools_tree_repositories),
        "packages": sorted({*defaults, *config.tools_tree_packages}),
    }
    if config.tools_tree_package_manager_trees:
        # Only when set, so that the names of trees built without them stay what they were.
        spec["package_manager_trees"] = package_manager_trees_digest(config)
    return spec


def package_manager_trees_digest(config: Config) -> str:
    """ToolsTreePackageManagerTrees= by content: changed apt configuration builds a new tree."""
    # Imported here: the pipeline package imports this module.
    from imagebuild.pipeline.inputs import hash_tree

    digest = hashlib.sha256()
    for tree in config.tools_tree_package_manager_trees:
        hash_tree(digest, Path(tree.source), str(tree.target or "/"))
    return digest.hexdigest()


def tools_tree_name(spec: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return f"{spec['distribution']}-{spec['release']}-{digest}"


def derived_config(config: Config, spec: dict[str, Any], output_directory: Path, name: str) -> Config:
    """The Format=directory config that builds the tools tree, through the normal config loader."""
    from imagebuild.config import load

    argv = [
        f"--directory={output_directory / 'config'}",
        f"--distribution={spec['distribution']}",
        f"--release={spec['release']}",
        "--format=directory",
        f"--output={name}",
        f"--output-dir={output_directory}",
        f"--package-cache-dir={paths.package_cache_directory(config)}",
        "--with-docs=no",
        "--package=" + ",".join(spec["packages"]),
    ]
    if spec["mirror"]:
        argv.append(f"--mirror={spec['mirror']}")
    if spec["repositories"]:
        argv.append("--repositories=" + ",".join(spec["repositories"]))
    if config.tools_tree_package_manager_trees:
        argv.append("--package-manager-tree=" + ",".join(str(t) for t in config.tools_tree_package_manager_trees))
    if config.workspace_directory is not None:
        argv.append(f"--workspace-dir={config.workspace_directory}")
    (output_directory / "config").mkdir(parents=True, exist_ok=True)
    _, images = load([*argv, "build"])
    return images[-1]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder of a tree at a time (parallel test workers share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_default_tools_tree(config: Config, build: SubBuild | None) -> Path:
    """The cached default tools tree for config, built by `build` first if there is none for its package list."""
    spec = tools_tree_spec(config)
    name = tools_tree_name(spec)
    cache = tools_cache_directory(config)
    tree = cache / name
    if (tree / "usr").is_dir():
        return tree
    with _locked(cache / f"{name}.lock"):
        if (tree / "usr").is_dir():
            return tree
        logger.info("Building the tools tree %s (%d packages; cached in %s)", name, len(spec["packages"]), cache)
        if build is None:
            raise BuildError(f"ToolsTree=default: the tools tree {tree} is not built yet; build the image first")
        # The sub-build replaces whatever is there without a usr/: a broken leftover, not a tree.
        build(derived_config(config, spec, cache, name))
    return tree


def tools_tree_for(config: Config, build: SubBuild | None = None) -> Path | None:
    """The tools tree of config (None: use the host's tools); ToolsTree=default has `build` make one if needed."""
    setting = config.tools_tree
    if setting is None:
        return None
    if setting == "default":
        return build_default_tools_tree(config, build)
    tree = Path(setting)
    if not (tree / "usr" / "bin").is_dir():
        raise BuildError(f"ToolsTree={tree}: not a tools tree (it has no usr/bin directory)")
    return tree.absolute()


def tool(where: ContextLike, name: str, *, package: str | None = None) -> str:
    """find_tool in the tools tree of `where` (a Context, a tree, or None for the host)."""
    return find_tool(name, package=package, tools_tree=_tools_tree_of(where))


def run_tool(where: ContextLike, argv: Sequence[str | Path], **kwargs: Any) -> str:
    """run() with the tools tree of `where`."""
    return run(argv, tools_tree=_tools_tree_of(where), **kwargs)


_VERSION = re.compile(r"(\d+(?:\.\d+)*)")


def parse_version(text: str) -> tuple[int, ...] | None:
    """The first version number in a tool's --version output ("systemd 257 (257.9-1)" → (257,))."""
    for line in text.splitlines():
        match = _VERSION.search(line)
        if match:
            return tuple(int(part) for part in match.group(1).split("."))
    return None


@functools.cache
def tool_version(tools_tree: Path | None, path: str) -> tuple[int, ...] | None:
    try:
        output = run([path, "--version"], tools_tree=tools_tree)
    except CommandError:
        return None
    return parse_version(output)


def require_tool(
    where: ContextLike,
    name: str,
    *,
    minimum_version: int | str | None = None,
    package: str | None = None,
    hint: str = "set ToolsTree=default to build with a tools tree that has it",
) -> str:
    """The path of a tool that exists and is at least minimum_version, or a BuildError with advice."""
    tools_tree = _tools_tree_of(where)
    try:
        path = find_tool(name, package=package, tools_tree=tools_tree)
    except BuildError as e:
        if tools_tree is not None:
            raise
        raise BuildError(f"{e}; or {hint}") from None
    if minimum_version is None:
        return path
    wanted = tuple(int(p) for p in str(minimum_version).split("."))
    found = tool_version(tools_tree, path)
    if found is None or found < wanted:
        shown = ".".join(map(str, found)) if found else "of unknown version"
        where_text = f"in the tools tree {tools_tree}" if tools_tree else "on this host"
        advice = "add a newer one to ToolsTreePackages= or use another ToolsTreeRelease=" if tools_tree else hint
        raise BuildError(
            f"{name} {shown} {where_text} is too old: version {minimum_version} or newer is needed; {advice}"
        )
    return path
