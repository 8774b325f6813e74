"""imagebuild journalctl on a tree holding a real journal: the one a booted examples/minimal wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagebuild.config import Overrides
from pytest_mkosi.images import ImageCache, resolve_configs
from pytest_mkosi.machine import Machine
from pytest_mkosi.machine.state import unique_machine_name
from pytest_mkosi.runners.nspawn import NspawnRunner
from tests.helpers import MINIMAL, imagebuild, write_config

pytestmark = pytest.mark.integration


def test_journalctl_verb_reads_the_journal_of_a_directory_image(tmp_path: Path) -> None:
    image = ImageCache().get(resolve_configs(MINIMAL, Overrides())[-1])
    runner = NspawnRunner(image.config, image.path, name=unique_machine_name("journal"))
    try:
        runner.start(timeout=120)
        machine = Machine(runner)
        machine.succeed("systemd-cat -t offline-test echo written-before-poweroff; journalctl --sync")
        tree = tmp_path / "out" / "img"
        (tree / "var/log").mkdir(parents=True)
        machine.copy_from("/var/log/journal", tree / "var/log/journal")
        machine_id = machine.succeed("cat /etc/machine-id").strip()
    finally:
        runner.stop()
    (tree / "etc").mkdir()
    (tree / "etc/machine-id").write_text(machine_id + "\n")
    config = write_config(tmp_path / "config", "[Distribution]\nDistribution=debian\n[Output]\nFormat=directory\n"
                          f"OutputDirectory={tmp_path}/out\nImageId=img\n")
    result = imagebuild("-C", str(config), "journalctl", "--no-pager", "-o", "json", "SYSLOG_IDENTIFIER=offline-test")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["MESSAGE"] for e in entries] == ["written-before-poweroff"]
