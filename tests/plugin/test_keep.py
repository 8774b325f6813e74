"""--mkosi-keep-on-failure on real machines: nspawn (examples/minimal) and qemu (the direct-kernel image of
tests/integration/ssh_images.py, TCG here). After a failing session the machine still answers over SSH, with
the printed command and with `imagebuild ssh` in the config's directory (through the runtime record the
session left there); a later session neither sweeps nor disturbs it, and leaves nothing of its own; the printed
stop command removes the machine, its processes, its state and its record."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from imagebuild.config import load_directory
from imagebuild.launch.runtime_state import state_path
from imagebuild.verbs import main_image
from tests.helpers import MINIMAL, processes_mentioning
from tests.integration.ssh_images import DIRECT_BOOT_CONFIG

pytestmark = pytest.mark.integration

HOME = Path.home()  # before pytester points HOME elsewhere: the qemu case uses this host's image and tools tree
FAILING = '''
def test_fails(mkosi_machine):
    with open({names!r}, "a") as f:
        f.write(mkosi_machine.name + "\\n")
    mkosi_machine.succeed("echo kept-7 > /root/marker")
    assert False, "meant to fail"
'''
PASSING = '''
import pathlib
def test_passes(mkosi_machine):
    pathlib.Path({record!r}).write_text(str(mkosi_machine.runner.state_dir))
    mkosi_machine.succeed("true")
'''


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One image cache for the module's nspawn sessions: examples/minimal is built once."""
    return tmp_path_factory.mktemp("images")


def printed(out: str, label: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith(label)]
    assert len(lines) == 1, out
    return lines[0][len(label):].strip()


def copy_config(source: Path, target: Path) -> Path:
    """The config in a directory of the test's own: `imagebuild ssh`'s record is written in its output
    directory. Its cache key does not depend on where it is."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("mkosi.output", "mkosi.cache", "tests"))
    return target


def check_kept_until_stopped(pytester: pytest.Pytester, config: Path, args: list[str], *, runner: str,
                             ssh_timeout: float) -> None:
    names = pytester.path / "names"
    pytester.makepyfile(test_kept=FAILING.format(names=str(names)))
    result = pytester.runpytest_subprocess(*args, "--mkosi-keep-on-failure", "test_kept.py", timeout=1500)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    ssh = shlex.split(printed(out, "reach it:"))
    imagebuild_ssh = shlex.split(printed(out, "or:"))
    state_dir = Path(printed(out, "its state:"))
    stop = shlex.split(printed(out, "stop it:"))
    name = names.read_text().split()[0]
    record = state_path(main_image(load_directory(config)))  # where `imagebuild -C CONFIG ssh` looks
    try:
        assert state_dir.name == name and (state_dir / "kept").exists()
        key = state_dir / ("ssh/id_ed25519" if runner == "qemu" else "id_ed25519")
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        # pytest has ended: the machine still runs, and answers the printed command and `imagebuild ssh`.
        assert processes_mentioning(str(state_dir)) != []
        assert oct(record.stat().st_mode & 0o777) == "0o600"
        supervisor = json.loads(record.read_text())["pid"]
        assert any(line.startswith(f"{supervisor} ") for line in processes_mentioning(str(state_dir)))
        reached = subprocess.run([*ssh, "cat /root/marker; systemctl is-system-running --wait"],
                                 capture_output=True, text=True, timeout=ssh_timeout)
        assert reached.stdout.split()[:1] == ["kept-7"], reached.stderr
        assert imagebuild_ssh[-3:] == ["-C", str(config), "ssh"]
        reached = subprocess.run([*imagebuild_ssh, "cat", "/root/marker"], capture_output=True, text=True,
                                 timeout=ssh_timeout)
        assert reached.stdout.split() == ["kept-7"], reached.stderr
        # Its console is still recorded: what the guest writes to it shows up in console.log.
        subprocess.run([*ssh, "echo console-after-session > /dev/console"], check=True, timeout=ssh_timeout)
        deadline = time.monotonic() + 60
        while b"console-after-session" not in (state_dir / "console.log").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.2)

        # A later session (passing, with the option) sweeps stale state at its start but not the kept
        # machine, and leaves nothing of its own.
        later = pytester.path / "later-state"
        pytester.makepyfile(test_passes=PASSING.format(record=str(later)))
        passed = pytester.runpytest_subprocess(*args, "--mkosi-keep-on-failure", "test_passes.py", timeout=1500)
        passed.assert_outcomes(passed=1)
        later_state = Path(later.read_text())
        assert "pytest-mkosi: kept" not in passed.stdout.str()
        assert not later_state.exists() and processes_mentioning(str(later_state)) == []
        assert (state_dir / "kept").exists() and processes_mentioning(str(state_dir)) != []
        assert subprocess.run([*ssh, "true"], timeout=ssh_timeout).returncode == 0

        stopped = subprocess.run(stop, capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert processes_mentioning(str(state_dir)) == []
        assert not state_dir.exists() and not record.exists()
        gone = subprocess.run([*imagebuild_ssh, "true"], capture_output=True, text=True, timeout=120)
        assert gone.returncode != 0 and "no machine of" in gone.stderr, gone.stderr
    finally:
        subprocess.run(stop, capture_output=True, timeout=120)


def test_a_failing_sessions_nspawn_machine_is_kept_until_stopped(pytester: pytest.Pytester, cache: Path) -> None:
    config = copy_config(MINIMAL, pytester.path / "minimal")
    args = [f"--mkosi-config={config}", f"--mkosi-cache-dir={cache}", "-p", "no:cacheprovider"]
    check_kept_until_stopped(pytester, config, args, runner="nspawn", ssh_timeout=120)


def test_a_failing_sessions_qemu_machine_is_kept_until_stopped(pytester: pytest.Pytester,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(HOME))
    config = copy_config(DIRECT_BOOT_CONFIG, pytester.path / "vm")
    args = [f"--mkosi-config={config}", "--mkosi-args=--package=openssh-server", "--mkosi-runner=qemu",
            "-p", "no:cacheprovider"]
    check_kept_until_stopped(pytester, config, args, runner="qemu", ssh_timeout=300)
