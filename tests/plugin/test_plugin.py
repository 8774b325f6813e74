"""The plugin as users meet it: options, fixtures, the image cache, xdist and cleanup."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import MINIMAL


def nspawn_processes(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "systemd-nspawn"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line]


def test_options_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--mkosi-config=DIR*", "*--mkosi-rebuild*"])


def test_fixtures_without_config_say_what_to_pass(pytester: pytest.Pytester) -> None:
    # Configs as test parameters: with no --mkosi-config the mkosi tests are skipped (not errors), and
    # the skip reason says what to pass.
    pytester.makepyfile("def test_x(mkosi_config):\n    pass\n")
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    assert "no --mkosi-config given: pass --mkosi-config=DIR" in result.stdout.str()


def test_bad_config_is_a_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    (tmp_path / "mkosi.conf").write_text("[Distribution]\nDistribution=nosuchdistro\n")
    pytester.makepyfile("def test_x(mkosi_config):\n    pass\n")
    result = pytester.runpytest_subprocess(f"--mkosi-config={tmp_path}")
    text = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert "Distribution" in text and "Traceback" not in text


RECORDER = '''
import json, os
def test_record(mkosi_image, mkosi_machine, tmp_path_factory):
    out = os.environ["RECORD_DIR"]
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump({"reused": mkosi_image.reused, "machine": mkosi_machine.name,
                   "hostname": mkosi_machine.succeed("hostname").strip()}, f)
'''


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One image cache for the tests that only need some built image, so they build it once."""
    return tmp_path_factory.mktemp("images")


@pytest.mark.integration
def test_example_session_builds_once_then_reuses(pytester: pytest.Pytester, shared_cache: Path) -> None:
    cache = shared_cache
    args = [f"--mkosi-config={MINIMAL}", f"--mkosi-cache-dir={cache}", str(MINIMAL / "tests"), "-p", "no:cacheprovider"]
    first = pytester.runpytest_subprocess(*args, timeout=900)
    first.assert_outcomes(passed=6)
    assert "pytest-mkosi: built" in first.stdout.str()
    second = pytester.runpytest_subprocess(*args, timeout=300)
    second.assert_outcomes(passed=6)
    assert "pytest-mkosi: reusing cached image" in second.stdout.str()
    assert nspawn_processes(str(cache)) == []


@pytest.mark.integration
def test_xdist_workers_share_one_build_and_get_own_machines(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record"
    record.mkdir()
    monkeypatch.setenv("RECORD_DIR", str(record))
    for i in range(4):
        pytester.makepyfile(**{f"test_rec{i}": RECORDER})
    cache = tmp_path / "images"
    result = pytester.runpytest_subprocess(
        f"--mkosi-config={MINIMAL}", f"--mkosi-cache-dir={cache}", "-n", "2", "--dist=loadfile",
        "-p", "no:cacheprovider", timeout=900,
    )
    result.assert_outcomes(passed=4)
    records = [json.loads(p.read_text()) for p in record.glob("gw*.json")]
    assert len(records) == 2, records
    assert sum(not r["reused"] for r in records) == 1
    assert records[0]["machine"] != records[1]["machine"]
    assert {r["hostname"] for r in records} == {"minimal"}
    assert nspawn_processes(str(cache)) == []


@pytest.mark.integration
def test_machine_is_stopped_when_tests_fail(pytester: pytest.Pytester, shared_cache: Path) -> None:
    pytester.makepyfile("def test_boom(mkosi_machine):\n    mkosi_machine.succeed('exit 7')\n")
    cache = shared_cache
    result = pytester.runpytest_subprocess(f"--mkosi-config={MINIMAL}", f"--mkosi-cache-dir={cache}",
                                           "-p", "no:cacheprovider", timeout=900)
    result.assert_outcomes(failed=1)
    # succeed() shows the command, its exit status and both streams.
    result.stdout.fnmatch_lines(["*command failed in*", "*exit status: 7*"])
    assert nspawn_processes(str(cache)) == []


@pytest.mark.integration
def test_machine_is_stopped_when_pytest_is_interrupted(pytester: pytest.Pytester, shared_cache: Path) -> None:
    ready = pytester.path / "ready"
    pytester.makepyfile(f'''
import pathlib, time
def test_wait(mkosi_machine):
    pathlib.Path({str(ready)!r}).write_text(mkosi_machine.name)
    time.sleep(300)
''')
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--mkosi-config={MINIMAL}", f"--mkosi-cache-dir={shared_cache}",
         "-p", "no:cacheprovider", str(pytester.path)],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 600
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    name = ready.read_text()
    assert nspawn_processes(name) != []
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    output = proc.communicate(timeout=120)[0]
    assert "KeyboardInterrupt" in output
    assert nspawn_processes(name) == []
