"""imagebuild qemu: a real trixie image boots to its login prompt under qemu (TCG here) from the tools tree.

The image (qemu_image/) is Format=directory with a kernel; the qemu verb boots its kernel and initrd
directly from an ext4 copy of the tree.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagebuild.config import load
from pytest_mkosi.images import ImageCache

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


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


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
    assert "using TCG" in text or "(KVM" in text
    # Stopping the verb stops qemu and swtpm and removes the ext4 copy.
    assert scratch, "the qemu verb made no scratch directory"
    for name in scratch:
        assert not (Path("/var/tmp") / name).exists()
        assert _processes_mentioning(name) == []


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
