#!/usr/bin/env python3
"""Figures for examples/disk (issue 5): the tools tree, the boot chain's stages of a real build, the boot.

Tools tree part: builds ToolsTree=default into a fresh cache three times: cold (empty package cache),
rebuilt with the packages cached, and cached (the tree is reused).

Boot chain part: builds a copy of examples/disk (with a fresh `imagebuild genkey` key), prints the duration
of each stage the build logged ("‣ stage" ... "stage took N s": the default initrd sub-build, the UKI,
both repart passes, ...), then boots the image with `imagebuild qemu` (OVMF, Secure Boot enrollment,
TCG here) and prints the seconds to the login prompt. Needs root, the tools tree (ToolsTree=default).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "disk"
STAGE = re.compile(r"^\s*(.+?) took ([0-9.]+)s$")


def imagebuild(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imagebuild", *args], capture_output=True, text=True,
                          check=False)


def boot_chain_figures(work: Path) -> None:
    tree = work / "disk"
    shutil.copytree(EXAMPLE, tree, ignore=shutil.ignore_patterns("mkosi.output", "mkosi.key", "mkosi.crt"))
    if imagebuild("-C", str(tree), "genkey").returncode != 0:
        sys.exit("imagebuild genkey failed")
    started = time.monotonic()
    result = imagebuild("-C", str(tree), "build")
    build = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"build failed:\n{result.stderr[-3000:]}")
    print(f"examples/disk build: {build:.1f} s")
    for line in result.stderr.splitlines():
        match = STAGE.match(line)
        if match and float(match.group(2)) >= 0.5:
            print(f"  {match.group(1)}: {float(match.group(2)):.1f} s")
    image = tree / "mkosi.output" / "disk-example.raw"
    print(f"image: {image.stat().st_size / 2**20:.0f} MiB")
    started = time.monotonic()
    child = pexpect.spawn(sys.executable, ["-m", "imagebuild", "-C", str(tree), "qemu"], encoding="utf-8",
                          codec_errors="replace", timeout=600)
    try:
        child.expect("login:")
        print(f"boot to login (OVMF, Secure Boot key enrollment and reset, systemd-boot, UKI, verity): "
              f"{time.monotonic() - started:.1f} s")
    finally:
        child.terminate(force=True)


def tools_tree_figures(work: Path) -> None:
    """ToolsTree=default: cold (empty package cache), rebuilt (packages cached) and cached (tree reused)."""
    conf = work / "tools-conf"
    conf.mkdir()
    (conf / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\nRelease=trixie\n[Host]\nToolsTree=default\n")
    script = (
        "import sys; from imagebuild.config import load; from imagebuild.pipeline.subbuilds import tools_tree_for; "
        f"print(tools_tree_for(load(['-C', {str(conf)!r}, '--cache-dir={work}/cache', "
        f"'--package-cache-dir={work}/pkgs', 'build'])[1][-1]))"
    )

    def build_tree() -> tuple[float, Path]:
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.exit(f"tools tree build failed:\n{result.stderr[-3000:]}")
        return time.monotonic() - started, Path(result.stdout.strip().splitlines()[-1])

    cold, tree = build_tree()
    print(f"tools tree, cold (empty package cache): {cold:.1f} s")
    shutil.rmtree(tree)
    rebuilt, _ = build_tree()
    print(f"tools tree, rebuilt (packages cached):  {rebuilt:.1f} s")
    cached, _ = build_tree()
    print(f"tools tree, cached (reused):            {cached:.1f} s")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="imagebuild-bench-disk-", dir="/var/tmp") as tmp:
        tools_tree_figures(Path(tmp))
        boot_chain_figures(Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
