#!/usr/bin/env python3
"""Build figures for examples/minimal (issue 4).

Prints: a cold build (empty package cache), a warm build (package cache filled), an incremental build
(Incremental=yes, only a file in mkosi.extra changed since the cached build), and raw mmdebstrap of the
same package set with the same flags minus imagebuild's hooks (package cache, eatmydata). These run with
--no-install-cache, so that they measure the package cache and Incremental= alone.
Then the install cache (on by default): the cold build of a trixie directory image with systemd, udev,
dbus and openssh-server, and its warm build after only mkosi.extra changed.
Goals: warm build within 1.2x of raw mmdebstrap; incremental build under 5 s; install-cache warm build
at most 4 s. Needs root and the host tools (scripts/bootstrap).

--install-cache-only runs only the last part. With MKOSI_CHECKOUT=<a checkout of upstream mkosi, e.g. v26>
the same warm build (only mkosi.extra changed, mkosi's defaults) is also run by that mkosi, interleaved
with ours so that both see the same machine load, and the ratio of the best times is printed (goal: ours
at most 0.35x). mkosi runs from the checkout with PYTHONPATH; nothing of it is part of this project. Its
Debian config adds a trixie-debug repository that some mirrors refuse, so its sandbox gets a sources file
with only the plain archive (mkosi.sandbox/etc/apt/sources.list.d/mkosi.sources, which mkosi then does
not write itself).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "examples" / "minimal"

# imagebuild's own additions to the mmdebstrap command line.
OUR_OPTIONS = ("--setup-hook=", "--extract-hook=", "--customize-hook=", "--essential-hook=",
               "--skip=essential/unlink", "--skip=download/empty")


def timed(argv: list[str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{shlex.join(argv)} failed:\n{result.stderr[-3000:]}")
    return elapsed, result.stderr


def mmdebstrap_argv(debug_log: str, target: Path) -> list[str]:
    """The mmdebstrap command imagebuild ran (from its --debug log), without imagebuild's hooks."""
    lines = debug_log.splitlines()
    argv: list[str] | None = None
    for start, line in enumerate(lines):
        words = line.split()
        if len(words) < 2 or words[0] != "+" or not words[1].endswith("mmdebstrap"):
            continue
        # Hook scripts may contain newlines: the logged command goes on until it parses.
        text = line.split("+ ", 1)[1]
        for end in range(start + 1, len(lines) + 1):
            try:
                argv = shlex.split(text)
                break
            except ValueError:
                if end < len(lines):
                    text += "\n" + lines[end]
        break
    if argv is None:
        sys.exit("the --debug log shows no mmdebstrap command")
    argv = [a for a in argv if not a.startswith(OUR_OPTIONS) and a != "--skip=update"]
    # The positional arguments are: suite, target, sources...; the target is the first absolute path
    # after the suite that is inside the workspace.
    positional = [i for i, a in enumerate(argv) if not a.startswith("-")][1:]
    suite_index = positional[0]
    argv[suite_index + 1] = str(target)
    return argv


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="imagebuild-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        if "--install-cache-only" in sys.argv[1:]:
            install_cache(work)
            return 0
        tree = work / "minimal"
        shutil.copytree(MINIMAL, tree, ignore=shutil.ignore_patterns("mkosi.output", "tests"))
        base = [sys.executable, "-m", "imagebuild", "-C", str(tree), f"--package-cache-dir={work}/pkgs",
                f"--output-dir={work}/out", "-f", "--no-install-cache"]
        cold, _ = timed([*base, "build"])
        print(f"cold build (empty package cache):        {cold:6.1f} s", flush=True)
        warm, log = timed([*base, "--debug", "build"])
        print(f"warm build (package cache filled):       {warm:6.1f} s", flush=True)
        raw = mmdebstrap_argv(log, work / "raw")
        raw_time, _ = timed(raw)
        print(f"raw mmdebstrap, same packages and flags: {raw_time:6.1f} s   (warm build: {warm / raw_time:.2f}x; "
              "goal <= 1.2x)", flush=True)
        incremental = [*base, "--incremental=yes", f"--cache-dir={work}/cache", "build"]
        primed, _ = timed(incremental)
        print(f"first build with Incremental=yes:        {primed:6.1f} s   (saves the cached image)", flush=True)
        (tree / "mkosi.extra/etc/imagebuild-example").write_text("changed for the benchmark\n")
        again, log_incremental = timed(incremental)
        assert "Reusing the cached image" in log_incremental, log_incremental
        print(f"incremental build (mkosi.extra changed): {again:6.1f} s   (goal < 5 s)")
        steps = [line.strip() for line in log_incremental.splitlines() if " took " in line]
        slowest = sorted(steps, key=lambda s: -float(s.rsplit(" ", 1)[1].rstrip("s")))[:4]
        print(f"  slowest steps: {'; '.join(slowest)}")
        install_cache(work)
    return 0


INSTALL_CACHE_CONF = """\
[Distribution]
Distribution=debian
Release=trixie

[Output]
Format=directory
Output=image

[Content]
Packages=systemd
         udev
         dbus
         openssh-server
"""


def slowest_steps(log: str, count: int = 4) -> str:
    steps = [line.strip() for line in log.splitlines() if " took " in line]
    return "; ".join(sorted(steps, key=lambda s: -float(s.rsplit(" ", 1)[1].rstrip("s")))[:count])


# The sources mkosi's sandbox uses instead of its own (which add trixie-debug).
MKOSI_SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
ROUNDS = 3


def config_tree(directory: Path) -> Path:
    (directory / "mkosi.extra/etc").mkdir(parents=True)
    (directory / "mkosi.conf").write_text(INSTALL_CACHE_CONF)
    (directory / "mkosi.extra/etc/benchmark").write_text("first\n")
    return directory


def install_cache(work: Path) -> None:
    """Cold and warm builds through the install cache, sharing the package cache of the builds above."""
    tree = config_tree(work / "install-cache")
    base = [sys.executable, "-m", "imagebuild", "-C", str(tree), f"--package-cache-dir={work}/pkgs",
            f"--output-dir={work}/out-install-cache", "-f", "build"]
    cold, _ = timed(base)
    print(f"install cache, cold build (systemd, udev, dbus, openssh-server): {cold:6.1f} s", flush=True)
    mkosi = mkosi_command(work)
    ours: list[float] = []
    theirs: list[float] = []
    if mkosi is not None:
        mkosi_cold, _ = timed(mkosi)
        print(f"mkosi ({os.environ['MKOSI_CHECKOUT']}), cold build:                  {mkosi_cold:6.1f} s", flush=True)
    for round_number in range(ROUNDS):
        (tree / "mkosi.extra/etc/benchmark").write_text(f"round {round_number}\n")
        warm, log = timed(base)
        assert "Reusing the installed tree" in log, log
        ours.append(warm)
        if mkosi is not None:
            (work / "mkosi-tree/mkosi.extra/etc/benchmark").write_text(f"round {round_number}\n")
            theirs.append(timed(mkosi)[0])
    print(f"install cache, warm build (mkosi.extra changed):                 {min(ours):6.1f} s   "
          f"(best of {ROUNDS}, all: {', '.join(f'{t:.1f}' for t in ours)}; goal <= 4 s)")
    print(f"  slowest steps of the last: {slowest_steps(log)}")
    if mkosi is not None:
        print(f"mkosi, the same warm build:                                       {min(theirs):6.1f} s   "
              f"(best of {ROUNDS}, all: {', '.join(f'{t:.1f}' for t in theirs)})")
        print(f"ratio imagebuild / mkosi (best times): {min(ours) / min(theirs):.2f}x   (goal <= 0.35x)")


def mkosi_command(work: Path) -> list[str] | None:
    """The build command of the checkout MKOSI_CHECKOUT names, for a copy of the benchmark's config."""
    checkout = os.environ.get("MKOSI_CHECKOUT")
    if not checkout:
        return None
    if not (Path(checkout) / "mkosi/__init__.py").is_file():
        sys.exit(f"MKOSI_CHECKOUT={checkout}: not a checkout of mkosi (no mkosi/__init__.py)")
    tree = config_tree(work / "mkosi-tree")
    sources = tree / "mkosi.sandbox/etc/apt/sources.list.d/mkosi.sources"
    sources.parent.mkdir(parents=True)
    sources.write_text(MKOSI_SOURCES)
    return ["env", f"PYTHONPATH={checkout}", sys.executable, "-m", "mkosi", "-C", str(tree),
            f"--output-directory={work}/out-mkosi", "-f", "build"]


if __name__ == "__main__":
    sys.exit(main())
