"""Evidence and gates on real nspawn machines of examples/minimal: report sections, artifacts and junit
properties, the badness gate and mkosi_allow, fresh boots after a machine died, boot-time baselines."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import MINIMAL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One image cache for the module: examples/minimal is built once."""
    return tmp_path_factory.mktemp("images")


def run(pytester: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(f"--mkosi-config={MINIMAL}", f"--mkosi-cache-dir={cache}",
                                         "-p", "no:cacheprovider", *args, timeout=900)


def properties(junit: Path) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = found.setdefault(case.get("name", ""), {})
        for prop in case.iter("property"):
            props.setdefault(prop.get("name", ""), []).append(prop.get("value", ""))
    return found


def test_failing_test_shows_journal_and_console_and_junit_holds_properties_and_artifacts(
        pytester: pytest.Pytester, shared_cache: Path) -> None:
    pytester.makepyfile(
        "def test_passes(mkosi_machine):\n    mkosi_machine.succeed('true')\n"
        "def test_fails(mkosi_machine):\n"
        "    mkosi_machine.succeed('echo evidence-marker-7 | systemd-cat -t marker -p err')\n"
        "    assert False\n"
    )
    artifacts = pytester.path / "artifacts"
    result = run(pytester, shared_cache, "--junitxml=junit.xml", f"--mkosi-artifacts={artifacts}")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    # The sections, with the journal readable and the priority shown.
    result.stdout.fnmatch_lines(["*- mkosi journal -*", "*err*marker*: evidence-marker-7", "*- mkosi console -*"])
    assert out.count("- mkosi journal -") == 1  # only the failing test's report
    props = properties(pytester.path / "junit.xml")
    for name in ("test_passes[minimal-debian-trixie-x86-64]", "test_fails[minimal-debian-trixie-x86-64]"):
        p = props[name]
        assert p["mkosi_cell"] == ["minimal-debian-trixie-x86-64"] and p["mkosi_config"] == [str(MINIMAL)]
        assert p["mkosi_runner"] == ["nspawn"] and p["mkosi_accelerator"] == ["none"]
        assert len(p["mkosi_image_digest"][0]) == 64 and p["imagebuild_version"]
        assert 0 < float(p["mkosi_boot_total"][0]) < 60
    failed = props["test_fails[minimal-debian-trixie-x86-64]"]
    assert "mkosi_artifacts" not in props["test_passes[minimal-debian-trixie-x86-64]"]  # failures only
    folder = Path(failed["mkosi_artifacts"][0])
    assert folder.parent == artifacts and folder.is_dir()
    # The journal stays structured: JSON lines with the fields journald gave.
    entries = [json.loads(line) for line in Path(failed["mkosi_artifact_journal"][0]).read_text().splitlines()]
    marker = [e for e in entries if e.get("MESSAGE") == "evidence-marker-7"]
    assert marker and marker[0]["PRIORITY"] == "3" and marker[0]["SYSLOG_IDENTIFIER"] == "marker"
    assert Path(failed["mkosi_artifact_console"][0]).exists()
    assert "<svg" in Path(failed["mkosi_artifact_boot_chart"][0]).read_text()


CRASHERS = '''
import time, pytest

def crash(machine, unit):
    # LimitCORE: the kernel writes a core (by the host's core_pattern in a container), so PID 1 sees code=dumped.
    machine.succeed(f"systemd-run -p LimitCORE=infinity --expand-environment=no --unit={unit} sh -c 'kill -SEGV $$'")
    machine.wait_until_succeeds(f"systemctl is-failed {unit}", timeout=30)

def test_crasher(mkosi_machine):
    crash(mkosi_machine, "crasher")

@pytest.mark.mkosi_allow("crasher2.service", reason="it is meant to crash")
def test_allowed_crasher(mkosi_machine):
    crash(mkosi_machine, "crasher2")

def test_after(mkosi_machine):
    mkosi_machine.succeed("true")
'''


def test_crashing_service_fails_the_badness_gate_unless_allowed(pytester: pytest.Pytester,
                                                                  shared_cache: Path) -> None:
    pytester.makepyfile(CRASHERS)
    result = run(pytester, shared_cache, "-rA")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "FAILED test_crashing_service_fails_the_badness_gate_unless_allowed.py::test_crasher[" in out
    assert "badness in the journal or console during this test" in out
    assert "crashed unit [crasher.service]" in out and "crasher2.service" not in out.split("= FAILURES =")[1]
    assert "- mkosi coredumps -" in out and "crasher.service: its main process dumped core" in out
    # The ini's mkosi_allow allows it everywhere; --mkosi-badness=warn turns the failure into a warning.
    pytester.makeini("[pytest]\nmkosi_allow =\n    crasher.service\n")
    run(pytester, shared_cache).assert_outcomes(passed=3)
    pytester.makeini("[pytest]\n")
    warned = run(pytester, shared_cache, "--mkosi-badness=warn")
    warned.assert_outcomes(passed=3, warnings=1)
    assert "MkosiBadnessWarning" in warned.stdout.str()


DEATHS = '''
import contextlib, time

def test_crash(mkosi_machine):
    mkosi_machine.crash()

def test_after_crash(mkosi_machine):
    assert mkosi_machine.succeed("echo up") == "up\\n"

def test_dies(mkosi_machine):
    with contextlib.suppress(Exception):
        mkosi_machine.run("echo going down-for-good > /dev/console; systemctl poweroff --force --force",
                          timeout=10)
    deadline = time.monotonic() + 30
    while mkosi_machine.is_running and time.monotonic() < deadline:
        time.sleep(0.1)

def test_after_death(mkosi_machine):
    assert mkosi_machine.succeed("echo up") == "up\\n"
'''


def test_machine_that_died_boots_afresh_for_the_next_test(pytester: pytest.Pytester, shared_cache: Path) -> None:
    pytester.makepyfile(DEATHS)
    result = run(pytester, shared_cache, "-rA")
    # crash() is the test's doing; a machine that went away by itself fails its test, with the console's tail.
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*_ test_dies[[]*", "*died during this test*", "*- mkosi machine -*",
                                 "*going down-for-good*"])
    result.stdout.fnmatch_lines(["*pytest-mkosi: 2 fresh boot(s) of a machine that was off*",
                                 "*test_after_crash*powered off by a test", "*test_after_death*died"])
    assert "Connection" not in result.stdout.str().split("short test summary")[1]


def test_slower_boot_fails_boot_time_against_the_previous_sessions_baseline(
        pytester: pytest.Pytester, shared_cache: Path, tmp_path: Path) -> None:
    pytester.makepyfile("def test_up(mkosi_machine):\n    mkosi_machine.succeed('true')\n")
    baseline = tmp_path / "boot-baseline.json"
    first = run(pytester, shared_cache, f"--mkosi-boot-baseline={baseline}", "--mkosi-update-baseline", "-v")
    first.assert_outcomes(passed=2)
    stored = json.loads(baseline.read_text())
    assert set(stored) == {"minimal-debian-trixie-x86-64@container"}
    # The same image one unit slower: a oneshot that sleeps 5 s in multi-user.target.
    slow = tmp_path / "slow"
    units = slow / "etc/systemd/system"
    (units / "multi-user.target.wants").mkdir(parents=True)
    (units / "slow-boot.service").write_text("[Service]\nType=oneshot\nExecStart=sleep 5\n")
    (units / "multi-user.target.wants/slow-boot.service").symlink_to("../slow-boot.service")
    second = run(pytester, shared_cache, f"--mkosi-boot-baseline={baseline}", f"--mkosi-args=--extra-tree={slow}")
    second.assert_outcomes(passed=1, failed=1)
    second.stdout.fnmatch_lines(["*boot-time[[]minimal-debian-trixie-x86-64[]]*", "*got slower than*",
                                 "phase*baseline*now*limit", "userspace*", "*slowest units now:*",
                                 "*slow-boot.service"])
    assert json.loads(baseline.read_text()) == stored  # compared, not written
