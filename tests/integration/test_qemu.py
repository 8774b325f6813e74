"""imagebuild qemu: a real trixie image boots to its login prompt under qemu (TCG here) from the tools tree.

The image (qemu_image/) is Format=directory with a kernel; the qemu verb boots its kernel and initrd
directly from an ext4 copy of the tree.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagebuild.config import load
from pytest_mkosi.images import ImageCache
from tests.helpers import processes_mentioning

pytestmark = pytest.mark.integration

# A trixie image with a kernel; its initrd holds only what a virtio disk needs (mkosi.skeleton sets
# initramfs-tools to MODULES=list), which keeps the boot short under TCG.
IMAGE_CONFIG = Path(__file__).parent / "qemu_image"

BOOT_TIMEOUT = 600.0
# agetty's prompt: "<hostname> login: "; no kernel or systemd message contains it.
LOGIN_PROMPT = b" login: "


@pytest.fixture(scope="module")
def output_directory() -> Path:
    """The image, built once per machine: pytest-mkosi's image cache keeps it across sessions."""
    _, images = load(["-C", str(IMAGE_CONFIG), "build"])
    return ImageCache().get(images[-1]).path.parent


def _scratch_dirs() -> set[str]:
    return {p.name for p in Path("/var/tmp").glob("imagebuild-qemu-*")}


def test_boots_to_login_prompt_and_cleans_up(output_directory: Path) -> None:
    before = _scratch_dirs()
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagebuild", "-C", str(IMAGE_CONFIG), f"--output-dir={output_directory}",
         "qemu"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = b""
    scratch: set[str] = set()
    try:
        while LOGIN_PROMPT not in output:
            if time.monotonic() - start > BOOT_TIMEOUT or proc.poll() is not None:
                break
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                output += os.read(proc.stdout.fileno(), 65536)
            scratch = scratch or (_scratch_dirs() - before)
    finally:
        booted = LOGIN_PROMPT in output
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = output.decode(errors="replace")
    assert booted, text[-3000:]
    # KernelCommandLineExtra= reached the kernel (it prints its command line) and swtpm gave it a TPM.
    assert any("Command line:" in line and "imagebuild.extra=ok" in line for line in text.splitlines())
    assert "tpm_tis" in text and "2.0 TPM" in text, text[-3000:]
    # One note says which accelerator boots the machine and why; the boot line agrees with it.
    note = re.search(r"Note: accelerator: (KVM|TCG) .* because ([^\n]+)", text)
    assert note is not None, text[:3000]
    boot_line = re.search(r"Booting \S+ in qemu \((KVM|TCG),", text)
    assert boot_line is not None and boot_line.group(1) == note.group(1)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert note.group(1) == "TCG" and "no usable /dev/kvm" in note.group(2)
    # Stopping the verb stops qemu and swtpm and removes the ext4 copy.
    assert scratch, "the qemu verb made no scratch directory"
    for name in scratch:
        assert not (Path("/var/tmp") / name).exists()
        assert processes_mentioning(name) == []


def test_real_qemu_accepts_every_option_the_builder_emits(tmp_path: Path) -> None:
    """A UEFI Secure Boot disk with a TPM, extra drives, a CD-ROM and credentials, started paused (-S):
    qemu exits at once on any option or device it does not accept."""
    from imagebuild.launch.qemu import QemuOptions, qemu_machine
    from imagebuild.pipeline.subbuilds import tools_tree_for

    conf = tmp_path / "conf"
    conf.mkdir()
    for name in ("mkosi.key", "mkosi.crt"):
        (conf / name).write_text("")
        (conf / name).chmod(0o600)
    out = tmp_path / "out"
    out.mkdir()
    with open(out / "image.raw", "wb") as f:
        f.truncate(64 << 20)
    (tmp_path / "drives").mkdir()
    for cdrom in ("no", "yes"):
        _, images = load([
            "-C", str(conf), "--distribution=debian", "--release=trixie", "--format=disk", f"--output-dir={out}",
            "--secure-boot=yes", "--qemu-swtpm=yes", "--qemu-smp=2", "--qemu-mem=512M", f"--qemu-cdrom={cdrom}",
            f"--qemu-drive=scratch:16M:{tmp_path}/drives", "--qemu-args=-device virtio-blk-pci,drive=scratch",
            "--credential=hello=world", "--kernel-command-line-extra=quiet", "--ephemeral=yes",
            "--runtime-size=128M", "--tools-tree=default", "build",
        ])
        config = images[-1]
        with qemu_machine(config, tools_tree=tools_tree_for(config),
                          options=QemuOptions(console_args=["-serial", "none"], extra_args=["-S"])) as vm:
            assert vm.swtpm is not None and vm.swtpm.socket.exists()
            assert vm.disk is not None and vm.disk.stat().st_size == 128 << 20
            proc = subprocess.Popen(vm.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            try:
                time.sleep(3)
                assert proc.poll() is None, proc.communicate()[0]
            finally:
                proc.terminate()
                proc.wait(10)
    assert list((tmp_path / "drives").iterdir()) == []


def test_real_qemu_accepts_the_runners_devices(tmp_path: Path) -> None:
    """The runner's additions (qcow2 overlay, console socket with a log, QMP, virtio-serial ports with their
    credentials) on a real qemu, started paused: qemu exits at once on anything it does not accept, and the
    QMP socket answers."""
    from imagebuild.launch import guest_ssh
    from imagebuild.launch.qemu import qemu_machine
    from imagebuild.pipeline.subbuilds import tools_tree_for
    from pytest_mkosi.runners.qemu import QemuRunner
    from pytest_mkosi.runners.qmp import Qmp

    conf, out, state = tmp_path / "conf", tmp_path / "out", tmp_path / "state"
    for directory in (conf, out, state):
        directory.mkdir()
    with open(out / "image.raw", "wb") as f:
        f.truncate(64 << 20)
    _, images = load(["-C", str(conf), "--distribution=debian", "--release=trixie", "--format=disk",
                      f"--output-dir={out}", "--runtime-size=128M", "--tools-tree=default", "build"])
    config = images[-1]
    runner = QemuRunner(config, out / "image.raw", name="paused", tools_tree=tools_tree_for(config))
    channel = guest_ssh.virtio_serial_channel(state, guest_ssh.make_keys(state / "ssh"))
    options = runner.qemu_options(state, channel)
    options.extra_args = [*options.extra_args, "-S"]
    with qemu_machine(runner.config, tools_tree=runner.tools_tree, options=options) as vm:
        assert vm.disk == state / "overlay.qcow2"
        proc = subprocess.Popen(vm.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            while not (state / "qmp.sock").exists():
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
                time.sleep(0.1)
            qmp = Qmp(state / "qmp.sock")
            status = qmp.command("query-status")
            assert isinstance(status, dict) and status["running"] is False
            listed = qmp.command("query-chardev")
            assert isinstance(listed, list)
            chardevs = {c["label"] for c in listed}
            assert {"console", "ibssh", "ibready"} <= chardevs
            for name in ("console.sock", "ssh.sock", "ready.sock"):
                assert (state / name).exists()
            qmp.quit()
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # The overlay's backing file is the image, which qemu only read.
    assert (out / "image.raw").stat().st_size == 64 << 20


def test_imagebuild_ssh_reaches_the_qemu_verbs_machine(tmp_path: Path) -> None:
    """`imagebuild qemu` on a tree with sshd, then `imagebuild ssh CMD` over its virtio-serial port."""
    from tests.integration.ssh_images import DIRECT_BOOT_CONFIG, direct_ssh_image

    out = direct_ssh_image().path.parent
    args = ["-C", str(DIRECT_BOOT_CONFIG), "--package=openssh-server", f"--output-dir={out}"]
    record = out / ".vm.runtime.json"
    verb = subprocess.Popen([sys.executable, "-m", "imagebuild", *args, "qemu"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not record.exists():
            assert verb.poll() is None and time.monotonic() < deadline, "the qemu verb wrote no runtime record"
            time.sleep(0.2)
        assert record.stat().st_mode & 0o777 == 0o600
        while True:
            # The kernel's hostname: the image has no /etc/hostname (no Hostname=), as mkosi's would not.
            result = subprocess.run([sys.executable, "-m", "imagebuild", *args, "ssh", "cat",
                                     "/proc/sys/kernel/hostname"], capture_output=True, text=True, timeout=120,
                                    check=False)
            if result.returncode == 0:
                break
            assert verb.poll() is None and time.monotonic() < deadline, result.stderr[-2000:]
            time.sleep(2)
        assert result.stdout.strip() != ""
    finally:
        verb.send_signal(signal.SIGTERM)
        try:
            verb.wait(30)
        except subprocess.TimeoutExpired:
            verb.kill()
            verb.wait()
    # The record goes with the machine; ssh then says how to start one.
    assert not record.exists()
    after = subprocess.run([sys.executable, "-m", "imagebuild", *args, "ssh", "true"], capture_output=True, text=True,
                           timeout=60, check=False)
    assert after.returncode != 0 and "imagebuild qemu" in after.stderr and "Traceback" not in after.stderr
