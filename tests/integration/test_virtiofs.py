"""virtiofs for real: a Format=directory image (tests/integration/qemu_image, direct kernel boot) booted by the
qemu runner with its root on virtiofs from a throw-away overlay and a RuntimeTrees= share; the guest's
writes reach the share but never the cached tree, and no virtiofsd outlives the machine."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from imagebuild.config import load
from imagebuild.pipeline.subbuilds import tools_tree_for
from imagebuild.tools.virtiofsd import find_virtiofsd
from pytest_mkosi.images import ImageCache
from pytest_mkosi.runners.qemu import QemuRunner
from tests.helpers import processes_mentioning
from tests.integration.ssh_images import DIRECT_BOOT_CONFIG
from tests.integration.test_qemu_runner import BOOT_TIMEOUT

pytestmark = pytest.mark.integration


def tree_digest(tree: Path) -> str:
    """Names, modes and contents of every entry below `tree` (symlinks by target)."""
    digest = hashlib.sha256()
    for directory, dirs, files in sorted(os.walk(tree)):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            path = Path(directory) / name
            st = path.lstat()
            digest.update(f"{path.relative_to(tree)} {st.st_mode} {st.st_uid}\n".encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def test_directory_image_on_virtiofs_with_a_runtime_tree(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "marker.txt").write_text("from the host\n")
    # A relative target goes below /root/src in the guest.
    _, images = load(["-C", str(DIRECT_BOOT_CONFIG), "--package=openssh-server",
                      f"--runtime-tree={share}:hostshare", "build"])
    image = ImageCache().get(images[-1])
    tools_tree = tools_tree_for(image.config)
    assert find_virtiofsd(tools_tree) is not None, "the default tools tree should carry virtiofsd"
    before = tree_digest(image.path)
    # The default state parent (/run/pytest-mkosi): short enough for the sockets (pytest's tmp_path is not).
    runner = QemuRunner(image.config, image.path, name=f"itest-virtiofs-{os.getpid()}", tools_tree=tools_tree)
    started = time.monotonic()
    runner.start(timeout=BOOT_TIMEOUT)
    print(f"virtiofs boot to SSH: {time.monotonic() - started:.1f} s (load {os.getloadavg()[0]:.1f})")
    try:
        state = runner.state_dir
        argv = (state / "qemu.argv").read_text()
        assert "vhost-user-fs-pci" in argv and "memory-backend-memfd" in argv and "root.ext4" not in argv
        daemons = [p for p in processes_mentioning(str(state), arguments=True) if "virtiofsd --fd=" in p]
        assert len(daemons) == 2, daemons
        conn = runner.connection()
        assert conn.run("findmnt -no FSTYPE,SOURCE /").stdout.split() == ["virtiofs", "root"]
        assert conn.run("findmnt -no FSTYPE /root/src/hostshare").stdout.strip() == "virtiofs"
        assert conn.run("cat /root/src/hostshare/marker.txt").stdout == "from the host\n"
        written = conn.run("echo guest > /root/src/hostshare/from-guest && echo x > /etc/written-by-guest"
                           " && rm /etc/issue && sync")
        assert written.returncode == 0, written.stderr
        assert (share / "from-guest").read_text() == "guest\n"
        # The guest's writes to its root went to the overlay in the machine's state directory.
        assert (state / "vfs-root-upper" / "etc" / "written-by-guest").exists()
        assert not (image.path / "etc" / "written-by-guest").exists()
        assert (image.path / "etc" / "issue").exists()  # removed in the guest, kept in the image
        # A hard power-off: virtiofsd notices qemu is gone and ends by itself.
        runner.power_off_hard()
        deadline = time.monotonic() + 10
        while [p for p in processes_mentioning(str(state)) if "virtiofsd" in p]:
            assert time.monotonic() < deadline, processes_mentioning(str(state))
            time.sleep(0.1)
    finally:
        runner.stop()
    assert not processes_mentioning(str(state)) and not state.exists()
    assert tree_digest(image.path) == before


HOLDER = """
import sys, time
from pathlib import Path
from imagebuild.launch.virtiofs import Share, Virtiofsd
tools_tree, binary, directory, source = sys.argv[1:]
daemon = Virtiofsd(Share("root", Path(source), overlay=True), binary=binary, tools_tree=Path(tools_tree),
                   directory=Path(directory))
daemon.start()
print(daemon.process.pid, flush=True)
time.sleep(600)
"""


def test_virtiofsd_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    """The real virtiofsd of the default tools tree, with its overlay, started by a process that is then
    SIGKILLed (as a pytest session may be): nothing of it is left a few seconds later."""
    _, images = load(["-C", str(DIRECT_BOOT_CONFIG), "--package=openssh-server", "build"])
    tools_tree = tools_tree_for(images[-1])
    assert tools_tree is not None
    binary = find_virtiofsd(tools_tree)
    assert binary is not None
    source, directory = tmp_path / "tree", Path(tempfile.mkdtemp(prefix="vfs-", dir="/run"))
    (source / "etc").mkdir(parents=True)
    root = Path(__file__).resolve().parent.parent.parent
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tools_tree), binary, str(directory), str(source)],
                              env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        holder.stdout.readline()
        deadline = time.monotonic() + 30
        while not [p for p in processes_mentioning(str(directory), arguments=True) if "virtiofsd --fd=" in p]:
            assert time.monotonic() < deadline and holder.poll() is None, "virtiofsd did not start"
            time.sleep(0.1)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        while processes_mentioning(str(directory)):
            assert time.monotonic() - killed < 5, processes_mentioning(str(directory))
            time.sleep(0.1)
        # The overlay was mounted only in virtiofsd's namespace: the host has none.
        assert str(directory) not in Path("/proc/self/mountinfo").read_text()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        shutil.rmtree(directory, ignore_errors=True)
