"""Figures of the machines issue: start to SSH-ready, the round trip of a command, machines side by side.

    python benchmarks/machines.py        (as root; builds examples/minimal into the image cache if needed)

Goals on the project's 2-core test host: nspawn ready <= 1 s, round trip of `true` <= 3 ms, four nspawn
machines started at once all ready <= 3 s. The host is shared, so the load average is printed along.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "examples" / "minimal"
ROUND_TRIPS = 50
SIDE_BY_SIDE = 4


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def nspawn_figures() -> None:
    from imagebuild.config import Overrides
    from pytest_mkosi.images import ImageCache, resolve_configs
    from pytest_mkosi.machine import Machine
    from pytest_mkosi.machine.state import unique_machine_name
    from pytest_mkosi.runners.nspawn import NspawnRunner

    image = ImageCache().get(resolve_configs(MINIMAL, Overrides())[-1])

    started = time.monotonic()
    runner = NspawnRunner(image.config, image.path, name=unique_machine_name("bench"))
    try:
        runner.start(timeout=120)
        ready = time.monotonic() - started
        machine = Machine(runner)
        machine.succeed("systemctl is-system-running --wait")
        machine.run("true")  # the first command also asks which login shell the guest has
        rtts = []
        for _ in range(ROUND_TRIPS):
            t = time.perf_counter()
            machine.run("true")
            rtts.append(time.perf_counter() - t)
    finally:
        runner.stop()
    print(f"nspawn start to SSH-ready:               {ready:6.2f} s   (goal <= 1 s)   load {load()}")
    print(f"nspawn median round trip of `true` ({ROUND_TRIPS}):  {statistics.median(rtts) * 1000:6.2f} ms  "
          f"(goal <= 3 ms)  load {load()}")

    runners = []
    errors: list[BaseException] = []
    started = time.monotonic()
    try:
        runners = [NspawnRunner(image.config, image.path, name=unique_machine_name("bench"))
                   for _ in range(SIDE_BY_SIDE)]

        def boot(runner: NspawnRunner) -> None:
            try:
                runner.start(timeout=120)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=boot, args=(r,)) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        all_ready = time.monotonic() - started
        states = {Machine(r).run("systemctl is-system-running --wait").stdout.strip() for r in runners}
    finally:
        for runner in runners:
            runner.stop()
    if errors:
        raise errors[0]
    print(f"{SIDE_BY_SIDE} nspawn machines at once, all ready:     {all_ready:6.2f} s   (goal <= 3 s)   "
          f"load {load()}; their systems: {', '.join(sorted(states))}")


def qemu_figures() -> None:
    # The qemu runner's figures (start to SSH-ready under TCG, round trip over virtio-serial) go here.
    print("qemu: not measured here yet")


def main() -> int:
    if os.geteuid() != 0:
        print("booting machines needs root", file=sys.stderr)
        return 1
    print(f"load average at start: {load()} on {os.cpu_count()} cores")
    nspawn_figures()
    qemu_figures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
