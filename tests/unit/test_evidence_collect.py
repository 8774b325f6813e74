"""The evidence collector against a scripted machine: a slow guest is not a dead one."""

from __future__ import annotations

from pathlib import Path

from pytest_mkosi.evidence.collect import COLLECT_TIMEOUT, SEPARATOR, Watch
from pytest_mkosi.machine.result import CommandTimeout
from tests.unit.fake_machines import machine_answering


def test_a_boot_chart_that_takes_too_long_costs_the_chart_not_the_boot(tmp_path: Path) -> None:
    def respond(line: str) -> tuple[int, str, str]:
        if "systemd-analyze plot" in line:
            raise CommandTimeout("systemd-analyze plot", 30.0, "", "")
        if "journalctl" in line:
            return 0, f"{SEPARATOR}\n", ""
        return 1, "", "no timings here"

    machine = machine_answering(tmp_path, respond)
    boot = Watch(machine).collect_boot(timeout=5)
    assert boot.chart is None and boot.slice.died is None


def test_collecting_waits_longer_on_a_tcg_guest(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, lambda line: (0, f"{SEPARATOR}\n", ""))
    assert Watch(machine).timeout == COLLECT_TIMEOUT
    machine.runner.accelerator = "tcg"
    watch = Watch(machine)
    watch.collect()
    assert watch.timeout > COLLECT_TIMEOUT
    assert machine.runner.conn.timeouts[-1] == watch.timeout  # type: ignore[attr-defined]
