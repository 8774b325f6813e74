"""The qemu runner for real: examples/disk (OVMF, Secure Boot, swtpm) booted under qemu (TCG here; its first
qemu crashed on purpose and booted again), reached over SSH on a virtio-serial port (no network, no vsock on
this host), rebooted, crashed; the cached image unchanged afterwards; and nothing left behind when the pytest
session that ran a machine is SIGKILLed."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.pipeline.subbuilds import tools_tree_for
from pytest_mkosi.images import BuiltImage
from pytest_mkosi.runners.qemu import QemuRunner
from tests.helpers import processes_mentioning
from tests.integration.ssh_images import disk_ssh_copy, disk_ssh_image

pytestmark = pytest.mark.integration

BOOT_TIMEOUT = 600.0  # TCG on a loaded 2-core host: a boot took 100-180 s here
HOME = Path.home()  # before pytester points HOME elsewhere


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    return disk_ssh_image()


@pytest.fixture(scope="module")
def image_digest(image: BuiltImage) -> str:
    return sha256(image.path)


def crash_first_qemu(runner: QemuRunner, *, after: float) -> None:
    """SIGSEGV to the first qemu the runner spawns, `after` seconds in (as a qemu fault would end it)."""

    def crash() -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while (runner._boot is None or runner._boot.qemu_pid is None) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(after)
        if runner._boot is not None and runner._boot.qemu_pid is not None:
            os.kill(runner._boot.qemu_pid, signal.SIGSEGV)

    threading.Thread(target=crash, daemon=True).start()


@pytest.fixture(scope="module")
def machine(image: BuiltImage, image_digest: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[QemuRunner]:
    runner = QemuRunner(image.config, image.path, name="itest-qemu", tools_tree=tools_tree_for(image.config),
                        state_parent=tmp_path_factory.mktemp("machines"))
    # Its first qemu crashes while the firmware runs: the runner boots the machine again (a real crash
    # costs this module about a second).
    crash_first_qemu(runner, after=1.0)
    runner.start(timeout=BOOT_TIMEOUT)
    try:
        yield runner
    finally:
        runner.stop()


def test_ssh_over_virtio_serial(machine: QemuRunner) -> None:
    assert machine.transport == "virtio-serial" and machine.accelerator in ("kvm", "tcg")
    assert machine.stalled_boots >= 1, "the crashed first qemu was not booted again"
    result = machine.connection().run("systemd-detect-virt; cat /proc/sys/kernel/random/boot_id; "
                                      "ls /sys/class/net; echo err >&2; exit 3")
    lines = result.stdout.split()
    assert result.returncode == 3 and result.stderr == "err\n"
    assert lines[0] == "qemu" and lines[1] == machine.boot_id
    # No NIC: only the loopback interface.
    assert lines[2:] == ["lo"]
    # Secure Boot is on: the firmware booted the signed chain.
    sb = machine.connection().run("od -An -t u1 -j4 /sys/firmware/efi/efivars/SecureBoot-*").stdout.split()
    assert sb == ["1"]
    # The console is recorded, and what is typed on it reaches the guest (getty prints its prompt again).
    assert b"Linux version" in machine.console_log_path.read_bytes()
    prompts = machine.console_log_path.read_bytes().count(b" login: ")
    machine.send_console("\n")
    deadline = time.monotonic() + 60
    while machine.console_log_path.read_bytes().count(b" login: ") <= prompts:
        assert time.monotonic() < deadline, "typing on the console did not reach the guest"
        time.sleep(0.2)


def test_ssh_command_reaches_the_machine_while_the_runner_is_not_connected(machine: QemuRunner) -> None:
    machine.release_ssh()
    try:
        out = subprocess.run([*shlex.split(machine.ssh_command()), "echo", "from-openssh"],
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0 and out.stdout == "from-openssh\n", out.stderr
    finally:
        machine.reconnect()
    # Back on the runner's own connection, many times over (each reconnect meets a fresh sshd). The first
    # hangs up on a connection that has only just logged in, while its sshd may still be sending.
    for _ in range(3):
        machine.reconnect()
        assert machine.connection().run("echo again").stdout == "again\n"


def test_a_session_cut_while_sshd_writes_does_not_reach_the_next_client(machine: QemuRunner) -> None:
    # OpenSSH killed while its sshd streams output: the guest may notice the hang-up late, and that sshd
    # writes on into whoever connects next. The relay (and the runner) use a connection only once a fresh
    # sshd's banner comes first (imagebuild.launch.serial_sshd).
    machine.release_ssh()
    ssh = shlex.split(machine.ssh_command())
    try:
        writer = subprocess.Popen([*ssh, "cat", "/dev/zero"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert writer.stdout is not None
        assert len(writer.stdout.read(1 << 16)) == 1 << 16
        writer.kill()
        writer.wait()
        out = subprocess.run([*ssh, "echo", "next"], capture_output=True, text=True, timeout=180, check=False)
        assert out.returncode == 0 and out.stdout == "next\n", out.stderr
    finally:
        machine.reconnect()
    assert machine.connection().run("echo runner").stdout == "runner\n"


def test_reboot_reconnects(machine: QemuRunner) -> None:
    before = machine.boot_id
    # --no-block: the answer comes back before sshd goes down with the guest (as Machine.reboot() asks).
    machine.connection().run("systemctl --no-block reboot")
    machine.wait_rebooted(timeout=BOOT_TIMEOUT)
    assert machine.boot_id != before
    assert machine.connection().run("cat /proc/sys/kernel/random/boot_id").stdout.strip() == machine.boot_id


def test_crash_cuts_the_power(machine: QemuRunner) -> None:
    state = machine.state_dir
    assert processes_mentioning(str(state)), "no qemu process found for the machine"
    machine.power_off_hard()
    assert not machine.is_running()
    with pytest.raises(ConnectionError):
        machine.connection()
    machine.stop()
    deadline = time.monotonic() + 10
    while processes_mentioning(str(state)) or state.exists():
        assert time.monotonic() < deadline, processes_mentioning(str(state))
        time.sleep(0.1)


def test_the_cached_image_is_unchanged(machine: QemuRunner, image: BuiltImage, image_digest: str) -> None:
    # Runs after the boots, the reboot and the crash of the module's machine.
    assert not machine.is_running()
    assert sha256(image.path) == image_digest


INNER_TEST = """
import os, time
from pathlib import Path

def test_sleeps(mkosi_machine):
    assert mkosi_machine.succeed("echo up") == "up\\n"
    Path(os.environ["MARKER"]).write_text(str(mkosi_machine.runner.state_dir))
    time.sleep(900)
"""


def test_sigkilled_session_leaves_no_process_and_no_key(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A plugin session with --mkosi-runner=qemu and the real fixtures, SIGKILLed while its machine runs."""
    marker = tmp_path / "marker"
    config = disk_ssh_copy(HOME / ".cache")
    pytester.makepyfile(INNER_TEST)
    root = Path(__file__).resolve().parent.parent.parent
    # The host's HOME (pytester points it elsewhere): its image, tools tree and package caches.
    env = {"MARKER": str(marker), "PYTHONPATH": str(root), "HOME": str(HOME)}
    args = [f"--mkosi-config={config}", "--mkosi-args=--package=openssh-server", "--mkosi-runner=qemu"]
    session = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "-q", *args],
                               cwd=pytester.path, env={**os.environ, **env},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not marker.exists() or not marker.read_text():
            if session.poll() is not None or time.monotonic() > deadline:
                assert session.stdout is not None
                pytest.fail(f"the inner session did not reach its test:\n{session.stdout.read().decode()}")
            time.sleep(0.5)
        state = Path(marker.read_text())
        assert (state / "ssh" / "id_ed25519").exists() and processes_mentioning(str(state))
        assert any("swtpm" in p for p in processes_mentioning(str(state)))
        session.send_signal(signal.SIGKILL)
        session.wait()
        killed_at = time.monotonic()
        while processes_mentioning(str(state)) or state.exists():
            assert time.monotonic() - killed_at < 5, (processes_mentioning(str(state)), list(state.parent.iterdir()))
            time.sleep(0.1)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
