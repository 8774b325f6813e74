"""virtiofs under qemu: the argv for a directory root and RuntimeTrees=, finding virtiofsd, refusing
RuntimeTrees= without one, and the daemon's start/stop (a stand-in program for virtiofsd)."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagebuild.config.support import refusals
from imagebuild.errors import RunError
from imagebuild.launch import qemu as q
from imagebuild.launch import runtime_scratch, virtiofs
from imagebuild.tools import virtiofsd as finder
from tests.unit.test_qemu import config_for, disk_image, env, tree_image, value_after  # noqa: F401 (fixture)

started: list[list[str]] = []


class FakeProcess:
    """What Popen returns for virtiofsd in these tests: it has exited, so stop() kills nothing."""

    pid = 0
    returncode = 0

    def poll(self) -> int:
        return 0


@pytest.fixture
def vfs_env(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:  # noqa: F811
    # The workspace holds virtiofsd's unix sockets: xdist's tmp_path is too long for them (108 bytes).
    short = Path(tempfile.mkdtemp(prefix="vfs-", dir="/tmp"))
    env = {**env, "tmp": short}
    (env["tree"] / "usr/libexec").mkdir(parents=True)
    (env["tree"] / "usr/libexec/virtiofsd").write_text("")
    started.clear()

    def fake_spawn(argv: list[str], fd: int, log: Any) -> FakeProcess:
        assert f"--fd={fd}" in argv
        started.append(argv)
        return FakeProcess()

    monkeypatch.setattr(virtiofs, "spawn", fake_spawn)
    try:
        yield env
    finally:
        shutil.rmtree(short, ignore_errors=True)


def credential(argv: list[str], name: str) -> str:
    """A credential qemu reads from its file (Credentials= may hold secrets: launch/smbios.py)."""
    prefix = f"io.systemd.credential.binary:{name}="
    strings = [Path(v.removeprefix("type=11,path=")).read_text() for v in value_after(argv, "-smbios")
               if v.startswith("type=11,path=")]
    values = [s[len(prefix):] for s in strings if s.startswith(prefix)]
    assert len(values) == 1, values
    return base64.b64decode(values[0]).decode()


def test_directory_root_on_virtiofs_from_an_overlay(vfs_env: dict[str, Any]) -> None:
    tree = tree_image(vfs_env)
    config = config_for(vfs_env, "--format=directory", "--qemu-mem=1G")
    with q.qemu_machine(config, tools_tree=vfs_env["tree"]) as vm:
        argv = vm.argv
        scratch = vm.scratch
        assert vm.disk is None and len(vm.virtiofsd) == 1
        assert not (scratch / "root.ext4").exists()
    assert value_after(argv, "-machine") == ["q35,memory-backend=mem"]
    assert value_after(argv, "-object") == ["memory-backend-memfd,id=mem,size=1G,share=on"]
    assert [d for d in value_after(argv, "-device") if d.startswith("vhost")] == [
        "vhost-user-fs-pci,queue-size=1024,chardev=vfs-root,tag=root"]
    assert [c for c in value_after(argv, "-chardev") if "vfs" in c] == [
        f"socket,id=vfs-root,path={scratch}/vfs-root.sock"]
    assert "root=root rootfstype=virtiofs rw" in value_after(argv, "-append")[0]
    (daemon,) = started
    # The overlay: the cached tree below, an upper directory in the scratch directory, mounted in a private
    # mount namespace; virtiofsd (from the tools tree) serves the merged view.
    assert daemon[:4] == ["unshare", "--mount", "--propagation=private", "--"]
    assert daemon[8:12] == [str(tree), f"{scratch}/vfs-root-upper", f"{scratch}/vfs-root-work",
                            f"{scratch}/vfs-root-root"]
    bwrap = daemon.index("bwrap")
    assert daemon[bwrap:bwrap + 5] == ["bwrap", "--die-with-parent", "--dev-bind", "/", "/"]
    assert f"{vfs_env['tree']}/usr" in daemon
    served = daemon[daemon.index("/usr/libexec/virtiofsd"):]
    assert served[1].startswith("--fd=") and served[2] == f"--shared-dir={scratch}/vfs-root-root"
    assert "--sandbox=chroot" in served and "--cache=always" in served


def test_a_directory_root_made_into_ext4_boots_from_an_overlay_of_it(vfs_env: dict[str, Any],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    overlays: list[tuple[Path, Path]] = []

    def fake_overlay(image: Path, overlay: Path, *, size: int | None, tools_tree: Path | None) -> None:
        overlays.append((image, overlay))
        overlay.write_bytes(b"qcow2")

    monkeypatch.setattr(q, "qcow2_overlay", fake_overlay)
    tree_image(vfs_env)
    ext4 = vfs_env["tmp"] / "cached.root.ext4"
    ext4.write_bytes(b"\0" * 4096)
    config = config_for(vfs_env, "--format=directory", "--qemu-mem=1G")
    with q.qemu_machine(config, tools_tree=vfs_env["tree"], options=q.QemuOptions(root_disk=ext4)) as vm:
        argv, disk = vm.argv, vm.disk
        assert disk is not None and disk.name == "root.qcow2" and not vm.virtiofsd and not started
        assert overlays == [(ext4, disk)]
    assert "memory-backend-memfd" not in " ".join(argv) and value_after(argv, "-machine") == ["q35"]
    assert "root=/dev/vda rw" in value_after(argv, "-append")[0]
    assert ext4.read_bytes() == b"\0" * 4096  # only read


def test_runtime_trees(vfs_env: dict[str, Any], tmp_path: Path) -> None:
    disk_image(vfs_env)
    relative, absolute = tmp_path / "src1", tmp_path / "src2"
    relative.mkdir()
    absolute.mkdir()
    # The row's check looks at the config's tools tree.
    config = config_for(vfs_env, "--format=disk", f"--tools-tree={vfs_env['tree']}", f"--runtime-tree={relative}:here",
                        f"--runtime-tree={absolute}:/srv/data", "--credential=fstab.extra=mine")
    with q.qemu_machine(config, tools_tree=vfs_env["tree"]) as vm:
        argv = vm.argv
        fstab = credential(argv, "fstab.extra")  # its file goes with the machine
    assert [d for d in value_after(argv, "-device") if d.startswith("vhost-user-fs-pci")] == [
        "vhost-user-fs-pci,queue-size=1024,chardev=vfs-rt0,tag=rt0",
        "vhost-user-fs-pci,queue-size=1024,chardev=vfs-rt1,tag=rt1"]
    # A disk keeps its disk; the trees are served as they are (no overlay, no unshare).
    assert "-drive" in argv and [d[0] for d in started] == ["bwrap", "bwrap"]
    assert [d[-5] for d in started] == [f"--shared-dir={relative}", f"--shared-dir={absolute}"]
    assert not [a for d in started for a in d if a.startswith("--cache")]
    # Added to the config's own fstab.extra credential.
    assert fstab == ("mine\n"
                     "rt0 /root/src/here virtiofs defaults 0 0\n"
                     "rt1 /srv/data virtiofs defaults 0 0\n")


def test_without_virtiofsd_directories_become_ext4_and_runtime_trees_are_refused_first(
        env: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    tree_image(env)
    with q.qemu_machine(config_for(env, "--format=directory"), tools_tree=env["tree"]) as vm:
        assert vm.disk is not None and vm.disk.name == "root.ext4" and not vm.virtiofsd
        assert "memory-backend-memfd" not in " ".join(vm.argv)
    config = config_for(env, "--format=directory", f"--runtime-tree={tmp_path}")
    with pytest.raises(RunError, match=r"RuntimeTrees=.*qemu shares these directories through virtiofsd.*"
                                       r"ToolsTreePackages="), q.qemu_machine(config, tools_tree=env["tree"]):
        pass
    # Before any work: no scratch directory was made.
    assert not list((env["tmp"] / "ws").glob(f"{q.SCRATCH_PREFIX}*"))


def test_the_row_refuses_runtime_trees_where_the_tools_tree_has_no_virtiofsd(
        env: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    bare = tmp_path / "bare"
    (bare / "usr/bin").mkdir(parents=True)
    config = config_for(env, "--format=disk", f"--tools-tree={bare}", f"--runtime-tree={tmp_path}")
    found = [r for r in refusals(config, None) if r.setting.name == "RuntimeTrees"]
    assert len(found) == 1 and "install the package virtiofsd" in str(found[0])
    (bare / "usr/libexec").mkdir()
    (bare / "usr/libexec/virtiofsd").write_text("")
    assert not [r for r in refusals(config, None) if r.setting.name == "RuntimeTrees"]
    # Without RuntimeTrees= there is nothing to refuse.
    plain = config_for(env, "--format=disk", f"--tools-tree={tmp_path / 'none'}")
    assert not [r for r in refusals(plain, None) if r.setting.name == "RuntimeTrees"]


def test_finding_virtiofsd(tmp_path: Path, env: dict[str, Any]) -> None:  # noqa: F811
    assert finder.find_virtiofsd(tmp_path) is None
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/virtiofsd").write_text("")
    assert finder.find_virtiofsd(tmp_path) == "/usr/lib/virtiofsd"
    # ToolsTree=default not built yet: its package list decides.
    config = config_for(env, "--format=disk", "--tools-tree=default", f"--cache-dir={tmp_path / 'cache'}")
    assert not finder.config_lacks_virtiofsd(config)


STAND_IN = """#!/bin/sh
# Stands in for virtiofsd: proves it got the listening socket (--fd=N), then waits to be stopped.
fd=${1#--fd=}
[ -S /proc/self/fd/$fd ] && echo ok > "$MARK"
exec sleep 600
"""


def test_daemon_gets_the_socket_and_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "virtiofsd"
    program.write_text(STAND_IN)
    program.chmod(0o755)
    mark = tmp_path / "mark"
    monkeypatch.setenv("MARK", str(mark))
    source = tmp_path / "src"
    source.mkdir()
    daemon = virtiofs.Virtiofsd(virtiofs.Share("t", source, Path("/mnt")), binary=str(program),
                                tools_tree=None, directory=tmp_path)
    assert daemon.wrapper() == []
    daemon.start()
    try:
        deadline = time.monotonic() + 20
        while not mark.exists():
            assert time.monotonic() < deadline and daemon.process is not None and daemon.process.poll() is None
            time.sleep(0.05)
        assert daemon.socket_path.is_socket()
    finally:
        daemon.stop()
    assert daemon.process is not None and daemon.process.returncode is not None
    assert not daemon.socket_path.exists()
    assert subprocess.run(["pgrep", "-f", str(program)], capture_output=True).returncode == 1


def test_overlay_paths_that_overlayfs_cannot_take_are_refused(tmp_path: Path) -> None:
    odd = tmp_path / "a,b"
    odd.mkdir()
    daemon = virtiofs.Virtiofsd(virtiofs.Share("root", odd, overlay=True), binary="/usr/libexec/virtiofsd",
                                tools_tree=None, directory=tmp_path)
    with pytest.raises(RunError, match="overlayfs cannot take a path with"):
        daemon.wrapper()


def test_runtime_scratch_is_a_disk_mounted_on_var_tmp(
        env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    disk_image(env)
    made: list[Path] = []

    def fake_disk(directory: Path, tools_tree: Path | None) -> Path:
        made.append(directory / "scratch.ext4")
        return made[-1]

    monkeypatch.setattr(runtime_scratch, "make_scratch_disk", fake_disk)
    with q.qemu_machine(config_for(env, "--format=disk", "--runtime-scratch=yes"), tools_tree=env["tree"]) as vm:
        argv = vm.argv
        fstab = credential(argv, "fstab.extra")  # its file goes with the machine
    assert f"if=none,id=scratch,file={made[0]},format=raw,cache=unsafe,discard=unmap" in value_after(argv, "-drive")
    assert "virtio-blk-pci,drive=scratch" in value_after(argv, "-device")
    assert fstab == "LABEL=scratch /var/tmp ext4 defaults 0 0\n"
    # auto (the default) makes none.
    with q.qemu_machine(config_for(env, "--format=disk"), tools_tree=env["tree"]) as vm:
        assert "id=scratch" not in " ".join(vm.argv)


def test_scratch_disk_for_real(tmp_path: Path) -> None:
    disk = runtime_scratch.make_scratch_disk(tmp_path, None)
    assert disk.stat().st_size == 1 << 40 and disk.stat().st_blocks * 512 < 256 << 20
    label = subprocess.run(["e2label", str(disk)], capture_output=True, text=True, check=True).stdout.strip()
    assert label == "scratch"
    # Kept for the next boot in the same directory.
    assert runtime_scratch.make_scratch_disk(tmp_path, None) == disk
