"""The default initrd (Initrds= empty) and the kernel modules initrd (KernelModulesInitrd=).

The default initrd is a sub-build through this builder's own pipeline: a Format=cpio image of a config
derived from the image's (same distribution, release, mirror, package cache, tools tree) with systemd, udev
and what root discovery and dm-verity need, plus InitrdPackages= and the InitrdInclude= configs. It holds no
kernel: kernel modules come in a second initrd made per kernel from the image's own modules, which the UKI
appends to it (KernelModulesInitrd=). The default initrd is cached (CacheDirectory=, else the user's cache)
by its inputs and the day it was built.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import paths
from imagebuild.boot import modules
from imagebuild.boot.kernel import Kernel
from imagebuild.boot.toolchain import run_tool, tool
from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.outputs.archive import make_cpio

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

# What an initrd needs to find the root partition (systemd-gpt-auto-generator, udev), set up dm-verity
# (systemd-veritysetup is in systemd-cryptsetup, the dm udev rules in dmsetup), load modules (kmod) and
# check and mount the file system (util-linux, e2fsprogs).
# Bump when the way the default initrd is built changes, so that cached ones are not reused.
CACHE_LAYOUT_VERSION = 1

DEFAULT_INITRD_PACKAGES = {
    "debian": ("systemd", "udev", "kmod", "util-linux", "e2fsprogs", "systemd-cryptsetup", "dmsetup"),
}


def _initrd_extra_tree(directory: Path) -> Path:
    """/init (the kernel runs it) and /etc/initrd-release (tells systemd it runs in an initrd)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "etc").mkdir(exist_ok=True)
    (directory / "init").symlink_to("usr/lib/systemd/systemd")
    (directory / "etc/initrd-release").symlink_to("../usr/lib/os-release")
    return directory


def initrd_packages(config: Config) -> list[str]:
    distribution = str(config.distribution)
    try:
        return [*DEFAULT_INITRD_PACKAGES[distribution], *config.initrd_packages]
    except KeyError:
        raise BuildError(
            f"not supported yet: a default initrd for Distribution={distribution}; set Initrds="
        ) from None


def initrd_config(context: Context, directory: Path) -> Config:
    """The config of the default initrd, through the normal config loader (so InitrdInclude= works)."""
    from imagebuild.config import load

    config = context.config
    distribution = str(config.distribution)
    packages = initrd_packages(config)
    (directory / "config").mkdir(parents=True, exist_ok=True)
    argv = [
        f"--directory={directory / 'config'}",
        f"--distribution={distribution}",
        f"--release={config.release}",
        f"--architecture={config.architecture}",
        "--format=cpio",
        "--compress-output=zstd",
        "--output=initrd",
        f"--output-dir={directory / 'output'}",
        f"--package-cache-dir={context.package_cache}",
        f"--workspace-dir={context.workspace}",
        "--with-docs=no",
        "--bootable=no",
        f"--extra-tree={_initrd_extra_tree(directory / 'extra')}",
        "--package=" + ",".join(packages),
    ]
    if config.mirror:
        argv.append(f"--mirror={config.mirror}")
    if config.local_mirror:
        argv.append(f"--local-mirror={config.local_mirror}")
    if config.repositories:
        argv.append("--repositories=" + ",".join(config.repositories))
    if context.tools_tree is not None:
        argv.append(f"--tools-tree={context.tools_tree}")
    if config.source_date_epoch is not None:
        argv.append(f"--source-date-epoch={config.source_date_epoch}")
    argv += [f"--include={path}" for path in config.initrd_include]
    _, images = load([*argv, "build"])
    return images[-1]


def _include_digest(paths: list[Path], digest: hashlib._Hash) -> None:
    for path in sorted(paths):
        files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
        for file in files:
            digest.update(os.fsencode(file))
            digest.update(file.read_bytes() if file.is_file() else b"-")


def cache_key(config: Config, packages: list[str]) -> str:
    """What the default initrd depends on, plus today's date: a cached one is rebuilt at least daily, so
    that it does not keep package versions with known security fixes for long."""
    spec = {
        "layout": CACHE_LAYOUT_VERSION, "distribution": str(config.distribution), "release": config.release,
        "architecture": str(config.architecture), "mirror": config.mirror, "local_mirror": config.local_mirror,
        "repositories": list(config.repositories), "packages": packages,
        "day": datetime.date.today().isoformat(),
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    _include_digest([Path(p) for p in config.initrd_include], digest)
    return digest.hexdigest()[:16]


def cache_directory(config: Config) -> Path:
    if config.cache_directory is not None:
        return Path(config.cache_directory) / "initrd"
    return paths.user_cache_home() / "imagebuild" / "initrd"


def build_default_initrd(context: Context) -> Path:
    """The default initrd: from the cache (same inputs, built today), else a sub-build saved there."""
    config = context.config
    cache = cache_directory(config)
    cached = cache / f"{config.release}-{cache_key(config, initrd_packages(config))}.cpio.zst"
    target = context.artifacts / "initrd.cpio.zst"
    if cached.is_file():
        logger.info("Using the cached default initrd %s", cached)
        shutil.copyfile(cached, target)
        return target
    directory = context.workspace / "default-initrd"
    logger.info("Building the default initrd (a sub-build with Format=cpio)")
    built = context.sub_build(initrd_config(context, directory))
    shutil.move(built.resolve(), target)
    shutil.rmtree(directory, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    # Written under another name and renamed: a concurrent build never reads a half-written file.
    partial = cache / f".{cached.name}.{os.getpid()}"
    shutil.copyfile(target, partial)
    partial.rename(cached)
    for stale in cache.glob(f"{config.release}-*.cpio.zst"):
        if stale != cached and stale.stat().st_mtime < time.time() - 7 * 86400:
            stale.unlink(missing_ok=True)
    return target


def modules_filter(config: Config) -> modules.ModuleFilter:
    return modules.ModuleFilter(tuple(config.kernel_modules_initrd_include),
                                tuple(config.kernel_modules_initrd_exclude),
                                config.kernel_modules_initrd_include_host)


def run_depmod_on(context: Context, basedir: Path, version: str) -> None:
    """Index the modules below basedir with the image's own depmod, else the tools tree's or the host's.

    The image's kmod is the one that knows its kernel's module compression, and an image with a kernel has
    it (Debian's kernel packages depend on kmod), while the host need not (this one has no kmod).
    """
    # Imported here: the pipeline package imports the boot stages, so boot cannot import it at load time.
    from imagebuild.pipeline.image_sandbox import image_has_program, run_in_image

    if image_has_program(context.root, "depmod"):
        inside = "/run/imagebuild-modules"
        run_in_image(context, ["depmod", "--all", "--basedir", inside, version], what="depmod",
                     binds=[(basedir, inside)])
        return
    depmod = tool(context, "depmod", package="kmod")
    run_tool(context, [depmod, "--all", "--basedir", basedir, version], what="depmod")


def build_modules_initrd(context: Context, kernel: Kernel) -> Path:
    """A cpio with the kernel's selected modules, their firmware and freshly made module indexes."""
    root = context.root
    modules_dir = kernel.modules_dir(root)
    deps = modules.read_dependencies(modules_dir)
    keep = modules.select_modules(deps, modules_filter(context.config), prefix="KernelModulesInitrd",
                                  modules_dir=modules_dir)
    staging = context.workspace / f"modules-initrd-{kernel.version}"
    if staging.exists():
        shutil.rmtree(staging)
    modules.stage_modules(root, modules_dir, keep, staging)
    # depmod looks in <basedir>/lib/modules; the symlink is only for it (the initrd it joins has /lib).
    (staging / "lib").symlink_to("usr/lib")
    run_depmod_on(context, staging, kernel.version)
    (staging / "lib").unlink()
    target = context.artifacts / f"modules-{kernel.version}.cpio"
    make_cpio(staging, target)
    shutil.rmtree(staging)
    logger.info("Kernel modules initrd for %s: %d modules, %d bytes", kernel.version, len(keep),
                os.path.getsize(target))
    return target
