"""The plugin as users meet it: options, fixtures, the image cache, xdist and cleanup."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_mkosi.machine.state import state_parent
from tests.helpers import MINIMAL


def nspawn_processes(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "systemd-nspawn"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line]


def test_options_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--mkosi-config=DIR*", "*--mkosi-rebuild*"])


def test_without_config_mkosi_tests_skip_and_say_what_to_pass(pytester: pytest.Pytester) -> None:
    # A session without --mkosi-config (the project's own `pytest`, say) runs its other tests; the mkosi ones
    # are skipped with the reason, including tests that reach a mkosi fixture through another fixture.
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.fixture\ndef booted(mkosi_machine):\n    return mkosi_machine\n"
        "def test_x(mkosi_config):\n    pass\n"
        "def test_y(booted):\n    pass\n"
        "def test_plain():\n    pass\n"
    )
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    assert result.stdout.str().count("no --mkosi-config given: pass --mkosi-config=DIR") == 2


def test_bad_config_is_a_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    (tmp_path / "mkosi.conf").write_text("[Distribution]\nDistribution=nosuchdistro\n")
    pytester.makepyfile("def test_x(mkosi_config):\n    pass\ndef test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess(f"--mkosi-config={tmp_path}")
    text = result.stdout.str() + result.stderr.str()
    # Stopped before any test ran, with file, line, setting and what is accepted.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{tmp_path / 'mkosi.conf'}:2: Distribution=nosuchdistro" in text and "accepted: " in text
    assert "Traceback" not in text and "passed" not in text


def test_nspawn_for_a_disk_image_is_a_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    (tmp_path / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\n[Output]\nFormat=disk\n")
    pytester.makepyfile("def test_x(mkosi_machine):\n    pass\n")
    result = pytester.runpytest_subprocess(f"--mkosi-config={tmp_path}", "--mkosi-runner=nspawn")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--mkosi-runner=nspawn boots Format=directory images, not Format=disk" in result.stderr.str()


RECORDER = '''
import json, os
def test_record(mkosi_image, mkosi_machine, tmp_path_factory):
    out = os.environ["RECORD_DIR"]
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    state = mkosi_machine.run("systemctl is-system-running --wait").stdout.strip()
    failed = mkosi_machine.run("systemctl list-units --failed --no-legend --plain").stdout
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump({"reused": mkosi_image.reused, "machine": mkosi_machine.name,
                   "hostname": mkosi_machine.succeed("hostname").strip(), "state": state, "failed": failed}, f)
'''


@pytest.fixture
def host_port_22() -> Iterator[None]:
    """Something listening on the host's port 22, as the host's own sshd would: a guest sharing the host's
    network would fail to bind its ssh.socket there and come up degraded."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", 22))
        listener.listen()
    except OSError:
        listener.close()
        # Port 22 is taken already (a real sshd?): the condition holds without us.
        with socket.create_connection(("127.0.0.1", 22), timeout=5):
            pass
        yield
        return
    try:
        yield
    finally:
        listener.close()


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
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_port_22: None
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
    # The workers' lines reach the user's terminal through the controller, naming the worker.
    out = result.stdout.str()
    assert re.search(r"pytest-mkosi: \[gw\d\] built ", out) and re.search(r"pytest-mkosi: \[gw\d\] reusing ", out), out
    records = [json.loads(p.read_text()) for p in record.glob("gw*.json")]
    assert len(records) == 2, records
    assert sum(not r["reused"] for r in records) == 1
    assert records[0]["machine"] != records[1]["machine"]
    assert {r["hostname"] for r in records} == {"minimal"}
    # Both workers' systems came up whole, side by side, with the host's port 22 taken.
    assert [(r["state"], r["failed"]) for r in records] == [("running", "")] * 2, records
    assert nspawn_processes(str(cache)) == []


@pytest.mark.integration
def test_quick_start_passes_while_the_host_listens_on_port_22(
    pytester: pytest.Pytester, shared_cache: Path, host_port_22: None
) -> None:
    args = [f"--mkosi-config={MINIMAL}", f"--mkosi-cache-dir={shared_cache}", str(MINIMAL / "tests"),
            "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess(*args, timeout=900)
    result.assert_outcomes(passed=6)
    result = pytester.runpytest_subprocess(*args, "-n", "2", timeout=900)
    result.assert_outcomes(passed=6)
    assert nspawn_processes(str(shared_cache)) == []


@pytest.mark.integration
def test_sigkilled_session_leaves_no_machine_and_no_key(pytester: pytest.Pytester, shared_cache: Path) -> None:
    ready = pytester.path / "ready"
    pytester.makepyfile(f'''
import pathlib, time
def test_wait(mkosi_machine):
    pathlib.Path({str(ready)!r}).write_text(str(mkosi_machine.runner.state_dir))
    time.sleep(300)
''')
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--mkosi-config={MINIMAL}", f"--mkosi-cache-dir={shared_cache}",
         "-p", "no:cacheprovider", str(pytester.path)],
        cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not ready.exists() or not ready.read_text():
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.2)
    state_dir = Path(ready.read_text())
    name = state_dir.name
    assert nspawn_processes(name) != [] and (state_dir / "id_ed25519").exists()
    proc.kill()  # SIGKILL: no finalizer, no atexit runs
    proc.wait()
    deadline = time.monotonic() + 15
    while (nspawn_processes(name) or state_dir.exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert nspawn_processes(name) == []
    assert not state_dir.exists(), sorted(p.name for p in state_dir.iterdir())


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
        # As on a user's terminal: a suite started in the background (`cmd &` without job control) ignores
        # SIGINT, and Python then installs no KeyboardInterrupt handler in the session it starts.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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
    assert not (state_parent() / name).exists()  # keys, sockets and overlay went with it
