#!/usr/bin/env python3
"""End-to-end figures for examples/minimal (issue 2).

Prints: cold build (empty package cache), warm build, a cached pytest session end to end, the time from
machine start to SSH-ready, and the median round trip of `true` over the SSH handle (50 runs).
Goals: SSH-ready under 3 s, round trip under 5 ms. Needs root and the host tools (scripts/bootstrap).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "examples" / "minimal"


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> int:
    from imagebuild.config import load
    from pytest_mkosi.machine import Machine
    from pytest_mkosi.runners.nspawn import NspawnRunner

    with tempfile.TemporaryDirectory(prefix="imagebuild-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        build = [sys.executable, "-m", "imagebuild", "-C", str(MINIMAL), f"--package-cache-dir={work}/pkgs",
                 f"--output-dir={work}/out", "-f", "build"]
        cold = timed(build)
        warm = timed(build)
        print(f"cold build (empty package cache):   {cold:6.1f} s")
        print(f"warm build (package cache filled):  {warm:6.1f} s")

        session = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--mkosi-config={MINIMAL}",
                   f"--mkosi-cache-dir={work}/images", str(MINIMAL / "tests")]
        timed(session)  # fills the image cache
        print(f"cached pytest session, end to end:  {timed(session):6.1f} s")

        _, images = load(["-C", str(MINIMAL), f"--output-dir={work}/out", "build"])
        config = images[-1]
        started = time.monotonic()
        runner = NspawnRunner(config, work / "out" / config.output, name="bench-e2e")
        runner.start(timeout=60)
        ready = time.monotonic() - started
        machine = Machine(runner)
        try:
            machine.succeed("systemctl is-system-running --wait")
            rtts = []
            for _ in range(50):
                t = time.perf_counter()
                machine.succeed("true")
                rtts.append(time.perf_counter() - t)
        finally:
            runner.stop()
        print(f"machine start to SSH-ready:         {ready:6.2f} s   (goal < 3 s)")
        print(f"median round trip of `true` (50):   {statistics.median(rtts) * 1000:6.2f} ms  (goal < 5 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
