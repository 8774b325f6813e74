"""Figures of the evidence issue: what collecting a test's evidence adds per passing and per failing test.

    python benchmarks/evidence.py        (as root; builds examples/minimal into the image cache if needed)

A passing test pays for one round trip (the journal slice after the previous cursor and `systemctl --failed`),
the console slice and the badness scan; a failing test also for its report sections and artifacts (journal
JSON and text, console, failed units, the boot's journal, timings and chart). Goal on the project's 2-core
test host: <= 50 ms per passing test on nspawn. The host is shared, so the load average is printed along.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "examples" / "minimal"
TESTS = 30


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    from imagebuild.config import Overrides
    from pytest_mkosi.evidence import artifacts, badness, sections
    from pytest_mkosi.evidence.collect import Watch
    from pytest_mkosi.images import ImageCache, resolve_configs
    from pytest_mkosi.machine import Machine
    from pytest_mkosi.machine.state import unique_machine_name
    from pytest_mkosi.runners.nspawn import NspawnRunner

    image = ImageCache().get(resolve_configs(MINIMAL, Overrides())[-1])
    runner = NspawnRunner(image.config, image.path, name=unique_machine_name("bench"))
    passing, failing = [], []
    try:
        runner.start(timeout=120)
        machine = Machine(runner)
        watch = Watch(machine)
        started = time.perf_counter()
        boot = watch.collect_boot(timeout=120)
        boot_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as scratch:
            for i in range(TESTS):
                # What a test leaves in the journal: a few lines.
                machine.succeed(f"for n in 1 2 3; do echo test-{i}-$n | systemd-cat -t bench; done")
                t = time.perf_counter()
                found = watch.collect()
                hits = badness.unexpected(found.hits(), [])
                passing.append(time.perf_counter() - t)
                assert found.died is None and not hits, hits
                machine.succeed(f"echo failing-{i} | systemd-cat -t bench -p err")
                t = time.perf_counter()
                found = watch.collect()
                hits = badness.unexpected(found.hits(), [])
                sections.sections(found, journal_lines=100, hits=hits)
                directory = artifacts.test_directory(Path(scratch), f"test_bench.py::test_{i}[cell]")
                artifacts.write_slice(directory, found)
                artifacts.write_boot(directory, boot)
                failing.append(time.perf_counter() - t)
    finally:
        runner.stop()
    print(f"boot evidence (timings, boot journal, chart), once per boot: {boot_seconds * 1000:7.1f} ms  load {load()}")
    print(f"evidence per passing test (median of {TESTS}):              {statistics.median(passing) * 1000:7.1f} ms  "
          f"(goal <= 50 ms; max {max(passing) * 1000:.1f})  load {load()}")
    print(f"evidence per failing test (median of {TESTS}):              {statistics.median(failing) * 1000:7.1f} ms  "
          f"(max {max(failing) * 1000:.1f})  load {load()}")


if __name__ == "__main__":
    main()
