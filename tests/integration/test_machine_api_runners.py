"""The machines issue's "done when": one test file (machine_api_session.py) that uses every Machine API method
through the plugin's real fixtures passes on both runners: nspawn with examples/minimal and qemu with
examples/disk (OVMF, Secure Boot, verity, swtpm; TCG here), each in one pytester session (one boot, a
reboot, a crash and a start again), with the machine running cleanly (`systemctl is-system-running`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import MINIMAL
from tests.integration.ssh_images import disk_ssh_copy

pytestmark = pytest.mark.integration

SESSION_FILE = Path(__file__).with_name("machine_api_session.py")
# Taken before pytester points HOME elsewhere: the inner session must use this host's image, tools tree and
# package caches (and the stable copy of examples/disk), not build everything again in a new home.
HOME = Path.home()
SESSION_TESTS = 13


def session_args(runner: str) -> list[str]:
    if runner == "nspawn":
        return [f"--mkosi-config={MINIMAL}", "--mkosi-runner=nspawn"]
    # examples/disk with sshd, from its stable copy with a key made once (so the image cache reuses it).
    return [f"--mkosi-config={disk_ssh_copy(HOME / '.cache')}", "--mkosi-args=--package=openssh-server",
            "--mkosi-runner=qemu"]


@pytest.mark.parametrize("runner", ["nspawn", "qemu"])
def test_every_machine_api_method(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, runner: str) -> None:
    monkeypatch.setenv("HOME", str(HOME))
    pytester.makepyfile(test_api=SESSION_FILE.read_text())
    monkeypatch.setenv("API_EXPECTED_RUNNER", runner)
    # One boot session of qemu under TCG: boot, reboot and the start after the crash, 30-180 s each here.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", "-rfE", *session_args(runner),
                                           timeout=1800 if runner == "qemu" else 600)
    output = result.stdout.str()
    assert result.ret == 0, output[-8000:] + result.stderr.str()[-3000:]
    result.assert_outcomes(passed=SESSION_TESTS)
