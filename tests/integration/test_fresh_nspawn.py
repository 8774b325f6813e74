"""Fresh machines under systemd-nspawn, through the plugin itself: a pytest session on examples/minimal whose
tests break the machine in turn (mkosi_fresh_machine, @pytest.mark.mkosi_fresh; one even powers it off) and
each later one, fresh or ordinary, sees it as booted. The evidence agrees: a restored machine is neither a
"fresh boot" of a dead machine nor a new boot to judge, and a test's journal slice starts after its restore."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imagebuild.config import Overrides
from imagebuild.paths import user_cache_home
from pytest_mkosi.images import ImageCache, resolve_configs
from tests.helpers import MINIMAL

pytestmark = pytest.mark.integration

# Read now: the pytester fixture points HOME elsewhere.
REAL_CACHE = user_cache_home()

# The inner session writes its restore times to $TIMES (test_fresh_qemu uses it too).
INNER_CONFTEST = """
import json, os
from pathlib import Path
from pytest_mkosi.fixtures import fresh

def pytest_sessionfinish(session):
    state = session.config.stash.get(fresh._STATE, None)
    Path(os.environ["TIMES"]).write_text(json.dumps(state.restore_seconds if state else []))
"""

INNER_TESTS = """
import pytest

def test_1_breaks_the_machine(mkosi_fresh_machine):
    m = mkosi_fresh_machine
    # `|| true`: a container that has just booted may still be writing its host keys into /etc/ssh.
    m.succeed("echo dirty > /root/dirty; rm -rf /etc/ssh /etc/os-release /etc/systemd || true")
    assert m.run("test -e /etc/os-release").returncode != 0

def test_2_sees_a_clean_machine(mkosi_fresh_machine):
    m = mkosi_fresh_machine
    m.succeed("test -e /etc/os-release && test -d /etc/ssh && ! test -e /root/dirty")
    m.succeed("echo dirty2 > /root/dirty; systemctl mask systemd-journald.service")

def test_2b_powers_it_off(mkosi_fresh_machine):
    mkosi_fresh_machine.succeed("! test -e /root/dirty")
    mkosi_fresh_machine.crash()

def test_3_an_ordinary_test_after_them(mkosi_machine):
    mkosi_machine.succeed("! test -e /root/dirty")
    assert mkosi_machine.succeed("systemctl is-enabled systemd-journald.service || true").strip() != "masked"
    # Ordinary tests share what they leave behind, as before.
    mkosi_machine.succeed("echo ordinary > /root/ordinary")

def test_4_the_next_ordinary_test(mkosi_machine):
    mkosi_machine.succeed("test -e /root/ordinary")

@pytest.mark.mkosi_fresh
class TestMarked:
    def test_5_marked_breaks(self, mkosi_machine):
        mkosi_machine.succeed("! test -e /root/ordinary && ! test -e /root/dirty && echo m > /root/dirty")

    def test_6_marked_sees_it_clean(self, mkosi_machine):
        mkosi_machine.succeed("! test -e /root/dirty")
"""


def junit_properties(path: Path) -> dict[str, dict[str, str]]:
    return {case.attrib["name"]: {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
            for case in ET.parse(path).getroot().iter("testcase")}


def test_fresh_nspawn_machines_through_the_plugin(pytester: pytest.Pytester, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ImageCache(REAL_CACHE / "pytest-mkosi" / "images").get(resolve_configs(MINIMAL, Overrides())[-1])
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    times, junit, artifacts = tmp_path / "restore-times.json", tmp_path / "junit.xml", tmp_path / "artifacts"
    monkeypatch.setenv("TIMES", str(times))
    monkeypatch.setenv("XDG_CACHE_HOME", str(REAL_CACHE))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-v",
                                           f"--mkosi-config={MINIMAL}", "--mkosi-runner=nspawn",
                                           f"--junitxml={junit}", "--mkosi-artifacts-on=always",
                                           f"--mkosi-artifacts={artifacts}", timeout=900)
    output = result.stdout.str()
    assert result.parseoutcomes().get("passed") == 7, output
    # The crash in test_2b was undone by a restore, not by a fresh boot of a machine that was off.
    assert "fresh boot" not in output, output
    seconds = json.loads(times.read_text())
    # Restored before 2, 2b, 3 (an ordinary test after a fresh one), 5 and 6; not before 1 (as saved) and 4.
    assert len(seconds) == 5, seconds
    properties = {name.split("[")[0]: found for name, found in junit_properties(junit).items()}
    assert "mkosi_restores" not in properties["test_1_breaks_the_machine"], properties
    assert properties["test_6_marked_sees_it_clean"]["mkosi_restores"] == "5", properties
    # Each restore boots the container again, but that boot belongs to no test: the slice of the test after
    # a restore starts after it (the boot's first line, systemd's "running in system mode", is not in it).
    for name in ("test_2_sees_a_clean_machine", "test_3_an_ordinary_test_after_them"):
        [directory] = [d for d in artifacts.iterdir() if name in d.name]
        journal = (directory / "journal.txt").read_text()
        assert "running in system mode" not in journal, journal
    print("nspawn restore to SSH-ready (s):", ", ".join(f"{s:.2f}" for s in seconds))
