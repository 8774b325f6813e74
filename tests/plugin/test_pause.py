"""--mkosi-pause-on-failure on a real nspawn machine (examples/minimal), on a terminal (pexpect's pty): at the
first failure the session prints the command to reach the machine and waits for Enter; meanwhile the printed
command reaches the machine as the failed test left it, and after Enter the session goes on with the same
machine and ends leaving nothing behind."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.helpers import MINIMAL, processes_mentioning

pytestmark = pytest.mark.integration

INNER_TESTS = '''
def test_1_fails(mkosi_machine):
    mkosi_machine.succeed("echo paused-3 > /root/marker")
    assert False, "meant to fail"

def test_2_goes_on_with_the_same_machine(mkosi_machine):
    assert mkosi_machine.succeed("cat /root/marker").strip() == "paused-3"
'''


def test_a_failure_pauses_with_the_machine_reachable_until_enter(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_inner=INNER_TESTS)
    cache = tmp_path / "images"
    child = pexpect.spawn(sys.executable, ["-m", "pytest", f"--mkosi-config={MINIMAL}", f"--mkosi-cache-dir={cache}",
                                           "-p", "no:cacheprovider", "--mkosi-pause-on-failure", str(pytester.path)],
                          cwd=str(pytester.path), timeout=900, encoding="utf-8", dimensions=(50, 400))
    try:
        child.expect(r"is still running\. Reach it with:\r?\n\s+(\S[^\r\n]*)\r?\n")
        ssh = child.match.group(1)
        state = Path(re.search(r"-i (\S+)/id_ed25519", ssh).group(1))  # type: ignore[union-attr]
        child.expect("press Enter to continue the tests", timeout=30)
        # The session waits: the machine is there, as the failed test left it.
        marker = subprocess.run([*shlex.split(ssh), "cat", "/root/marker"], capture_output=True, text=True,
                                timeout=120)
        assert marker.stdout.strip() == "paused-3", marker.stderr
        child.sendline("")
        child.expect(pexpect.EOF, timeout=600)
        output = child.before
    finally:
        child.close(force=True)
    assert "1 failed, 1 passed" in output, output
    assert child.exitstatus == 1
    assert processes_mentioning(str(state)) == [] and not state.exists()
