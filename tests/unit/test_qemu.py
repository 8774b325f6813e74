"""The qemu command line from a config: firmware, disks, direct kernel boot, settings, KVM verdicts."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from imagebuild.config import Config, load
from imagebuild.errors import RunError
from imagebuild.launch import firmware as fw
from imagebuild.launch import kvm
from imagebuild.launch import qemu as q
from imagebuild.launch.swtpm import Swtpm, reaping_namespace
from imagebuild.verbs.qemu import split_kernel_argument

KVER = "6.12.1-amd64"
# The env fixture replaces q.use_kvm; the note tests need the real one.
REAL_USE_KVM = q.use_kvm


def make_tools_tree(root: Path) -> Path:
    for tool in ("qemu-system-x86_64", "mkfs.ext4", "swtpm", "swtpm_setup"):
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        (root / "usr/bin" / tool).write_text("")
    ovmf = root / "usr/share/OVMF"
    ovmf.mkdir(parents=True)
    for name in ("OVMF_CODE_4M.fd", "OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.fd", "OVMF_VARS_4M.ms.fd"):
        (ovmf / name).write_text(name)
    return root


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(q, "use_kvm", lambda *a: False)
    monkeypatch.setattr(q, "swtpm_available", lambda tree: False)

    def fake_ext4(tree: Path, target: Path, *, minimum_size: int | None, tools_tree: Path | None) -> None:
        target.write_bytes(b"ext4")

    monkeypatch.setattr(q, "tree_to_ext4", fake_ext4)
    return {"tree": make_tools_tree(tmp_path / "tools"), "out": tmp_path / "out", "tmp": tmp_path}


def config_for(env: dict[str, Any], *args: str) -> Config:
    directory = env["tmp"] / "conf"
    directory.mkdir(exist_ok=True)
    _, images = load(["-C", str(directory), "--distribution=debian", "--release=trixie", f"--output-dir={env['out']}",
                      f"--workspace-dir={env['tmp']}/ws", *args, "summary"])
    return images[-1]


def disk_image(env: dict[str, Any], name: str = "image.raw") -> Path:
    env["out"].mkdir(exist_ok=True)
    path: Path = env["out"] / name
    path.write_bytes(b"disk" * 1024)
    return path


def tree_image(env: dict[str, Any], name: str = "image") -> Path:
    tree: Path = env["out"] / name
    (tree / "usr/lib/modules" / KVER).mkdir(parents=True)
    (tree / "boot").mkdir()
    (tree / "boot" / f"vmlinuz-{KVER}").write_text("kernel")
    (tree / "boot" / f"initrd.img-{KVER}").write_text("initrd")
    return tree


def value_after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_disk_boots_through_ovmf_on_an_ephemeral_grown_copy(env: dict[str, Any]) -> None:
    image = disk_image(env)
    config = config_for(env, "--format=disk", "--ephemeral=yes", "--runtime-size=1M", "--qemu-mem=1G",
                        "--qemu-smp=2")
    with q.qemu_machine(config, tools_tree=env["tree"]) as vm:
        argv = vm.argv
        assert argv[0] == "bwrap" and "/usr/bin/qemu-system-x86_64" in argv
        assert vm.firmware == "uefi" and vm.accelerator == "tcg"
        assert vm.disk is not None and vm.disk != image and vm.disk.parent == vm.scratch
        assert vm.disk.stat().st_size == 1 << 20 and image.stat().st_size == 4096
        pflash = [d for d in value_after(argv, "-drive") if d.startswith("if=pflash")]
        assert "OVMF_CODE_4M.fd" in pflash[0] and "readonly=on" in pflash[0]
        assert str(vm.scratch) in pflash[1]
        assert f"file={vm.disk}" in value_after(argv, "-drive")[-1]
        assert value_after(argv, "-m") == ["1G"] and value_after(argv, "-smp") == ["2"]
        assert value_after(argv, "-accel") == ["tcg,thread=multi"]
        # Four-level paging under TCG (five-level page walks in software slowed the boot).
        assert value_after(argv, "-cpu") == ["max,la57=off"]
        scratch = vm.scratch
    assert not scratch.exists()


def test_not_ephemeral_boots_the_output_itself(env: dict[str, Any]) -> None:
    image = disk_image(env)
    with q.qemu_machine(config_for(env, "--format=disk"), tools_tree=env["tree"]) as vm:
        assert vm.disk == image


def test_secure_boot_uses_the_smm_firmware_and_empty_variables(env: dict[str, Any]) -> None:
    disk_image(env)
    for name in ("key", "crt"):
        (env["tmp"] / f"sb.{name}").write_text("")
        (env["tmp"] / f"sb.{name}").chmod(0o600)
    config = config_for(env, "--format=disk", "--secure-boot=yes", f"--secure-boot-key={env['tmp']}/sb.key",
                        f"--secure-boot-certificate={env['tmp']}/sb.crt")
    with q.qemu_machine(config, tools_tree=env["tree"]) as vm:
        assert vm.firmware == "uefi-secure-boot"
        assert "q35,smm=on" in vm.argv
        assert any("OVMF_CODE_4M.secboot.fd" in d for d in value_after(vm.argv, "-drive"))
        variables = vm.scratch / "ovmf-vars.fd"
        assert variables.read_text() == "OVMF_VARS_4M.fd"


def test_microsoft_variables_and_bios(env: dict[str, Any]) -> None:
    disk_image(env)
    config = config_for(env, "--format=disk", "--qemu-firmware-variables=microsoft")
    with q.qemu_machine(config, tools_tree=env["tree"]) as vm:
        assert (vm.scratch / "ovmf-vars.fd").read_text() == "OVMF_VARS_4M.ms.fd"
    with q.qemu_machine(config_for(env, "--format=disk", "--qemu-firmware=bios"), tools_tree=env["tree"]) as vm:
        assert not any(d.startswith("if=pflash") for d in value_after(vm.argv, "-drive"))


def test_directory_boots_its_kernel_directly_from_an_ext4_copy(env: dict[str, Any]) -> None:
    tree = tree_image(env)
    config = config_for(env, "--format=directory", "--kernel-command-line-extra=systemd.unit=rescue.target")
    with q.qemu_machine(config, tools_tree=env["tree"]) as vm:
        assert vm.firmware == "linux"
        assert value_after(vm.argv, "-kernel") == [str(tree / "boot" / f"vmlinuz-{KVER}")]
        assert value_after(vm.argv, "-initrd") == [str(tree / "boot" / f"initrd.img-{KVER}")]
        cmdline = value_after(vm.argv, "-append")[0].split()
        assert "root=/dev/vda" in cmdline and "rw" in cmdline and "console=ttyS0" in cmdline
        assert cmdline[-1] == "systemd.unit=rescue.target"
        assert vm.disk == vm.scratch / "root.ext4"
        assert not any(d.startswith("if=pflash") for d in value_after(vm.argv, "-drive"))


def test_split_artifacts_and_qemu_kernel_win_over_the_tree(env: dict[str, Any]) -> None:
    tree_image(env)
    (env["out"] / "image.vmlinuz").write_text("k")
    (env["out"] / "image.initrd").write_text("i")
    with q.qemu_machine(config_for(env, "--format=directory"), tools_tree=env["tree"]) as vm:
        assert value_after(vm.argv, "-kernel") == [str(env["out"] / "image.vmlinuz")]
        assert value_after(vm.argv, "-initrd") == [str(env["out"] / "image.initrd")]
    other = env["tmp"] / "other-kernel"
    other.write_text("k")
    with q.qemu_machine(config_for(env, "--format=directory", f"--qemu-kernel={other}"),
                        tools_tree=env["tree"]) as vm:
        assert value_after(vm.argv, "-kernel") == [str(other)]


def test_directory_without_kernel_is_a_clear_error(env: dict[str, Any]) -> None:
    (env["out"] / "image").mkdir(parents=True)
    with pytest.raises(RunError, match="no kernel"), q.qemu_machine(config_for(env, "--format=directory"),
                                                                     tools_tree=env["tree"]):
        pass


def test_credentials_cmdline_extra_drives_and_args(env: dict[str, Any]) -> None:
    disk_image(env)
    drives = env["tmp"] / "drives"
    drives.mkdir()
    config = config_for(env, "--format=disk", "--credential=hello=world", "--kernel-command-line-extra=quiet",
                        f"--qemu-drive=data:1M:{drives}", "--qemu-args=-device nvme,serial=x,drive=data",
                        "--qemu-cdrom=no")
    with q.qemu_machine(config, tools_tree=env["tree"],
                        options=q.QemuOptions(extra_args=["-snapshot"])) as vm:
        smbios = value_after(vm.argv, "-smbios")
        # A credential may be a secret: qemu reads it from a 0600 file, it is not on the command line.
        encoded = base64.b64encode(b'world').decode()
        assert not any(encoded in word for word in vm.argv)
        files = [Path(v.removeprefix("type=11,path=")) for v in smbios if v.startswith("type=11,path=")]
        hello = [f for f in files if f.read_text().startswith("io.systemd.credential.binary:hello=")]
        assert len(hello) == 1 and hello[0].read_text() == f"io.systemd.credential.binary:hello={encoded}"
        assert hello[0].stat().st_mode & 0o777 == 0o600
        assert "type=11,value=io.systemd.stub.kernel-cmdline-extra=quiet" in smbios
        backing = list(drives.iterdir())
        assert len(backing) == 1 and backing[0].stat().st_size == 1 << 20
        assert any(d.startswith("if=none,id=data,") for d in value_after(vm.argv, "-drive"))
        # QemuArgs= and then the caller's arguments come last, in this order.
        assert vm.argv[-3:] == ["-device", "nvme,serial=x,drive=data", "-snapshot"]
    assert list(drives.iterdir()) == []


def test_cdrom(env: dict[str, Any]) -> None:
    disk_image(env)
    with q.qemu_machine(config_for(env, "--format=disk", "--qemu-cdrom=yes"), tools_tree=env["tree"]) as vm:
        assert "scsi-cd,drive=image,bootindex=1" in vm.argv


def test_swtpm_is_started_and_stopped(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(Swtpm, "start", lambda self: events.append("start"))
    monkeypatch.setattr(Swtpm, "stop", lambda self: events.append("stop"))
    disk_image(env)
    with q.qemu_machine(config_for(env, "--format=disk", "--qemu-swtpm=yes"), tools_tree=env["tree"]) as vm:
        assert events == ["start"]
        assert "tpm-tis,tpmdev=tpm0" in vm.argv
    assert events == ["start", "stop"]


def test_swtpm_auto_only_with_uefi(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q, "swtpm_available", lambda tree: True)
    tree_image(env)
    config = config_for(env, "--format=directory")
    assert not q.want_swtpm(config, fw.resolve_firmware(config), env["tree"])
    disk = config_for(env, "--format=disk")
    assert q.want_swtpm(disk, fw.resolve_firmware(disk), env["tree"])


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--format=tar"], "cannot boot Format=tar"),
     (["--format=disk", "--runtime-tree=/srv"], "RuntimeTrees="),
     (["--format=disk", "--qemu-firmware-variables=custom"], "QemuFirmwareVariables=custom")],
)
def test_refusals(env: dict[str, Any], args: list[str], message: str) -> None:
    disk_image(env)
    with pytest.raises(RunError, match=message), q.qemu_machine(config_for(env, *args), tools_tree=env["tree"]):
        pass


def test_missing_image(env: dict[str, Any]) -> None:
    with pytest.raises(RunError, match="build the image first"), q.qemu_machine(
            config_for(env, "--format=disk"), tools_tree=env["tree"]):
        pass


def test_kvm_accelerator_args() -> None:
    assert q.accelerator_args(True, "4") == ["-accel", "kvm", "-cpu", "host", "-smp", "4"]


def test_tcg_cpu_has_no_five_level_paging() -> None:
    assert q.accelerator_args(False, "2") == ["-accel", "tcg,thread=multi", "-cpu", "max,la57=off", "-smp", "2"]


def test_kvm_verdict_is_probed_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[Path] = []

    def probe(qemu: str, kernel: Path, tree: Path | None) -> bool:
        probes.append(kernel)
        return False

    monkeypatch.setattr(kvm, "kvm_device_usable", lambda: True)
    monkeypatch.setattr(kvm, "run_probe", probe)
    cache = tmp_path / "kvm.json"
    kernel = tmp_path / "vmlinuz"
    works, note = kvm.kvm_works("qemu", "QEMU 10.0", kernel, None, cache)
    assert works is False and note is not None and "using TCG" in note
    assert kvm.kvm_works("qemu", "QEMU 10.0", kernel, None, cache)[0] is False
    assert probes == [kernel]
    # Another qemu version is probed again.
    monkeypatch.setattr(kvm, "run_probe", lambda *a: True)
    assert kvm.kvm_works("qemu", "QEMU 11.0", kernel, None, cache) == (True, None)


def test_kvm_without_device_or_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kvm, "kvm_device_usable", lambda: False)
    assert kvm.kvm_works("qemu", "v", tmp_path / "k", None, tmp_path / "c.json") == (False, None)
    monkeypatch.setattr(kvm, "kvm_device_usable", lambda: True)
    works, note = kvm.kvm_works("qemu", "v", None, None, tmp_path / "c.json")
    assert works is False and note is not None and "no kernel" in note
    assert not (tmp_path / "c.json").exists()


def test_probe_argv_boots_the_kernel_under_kvm(tmp_path: Path) -> None:
    argv = kvm.probe_argv("qemu", tmp_path / "vmlinuz")
    assert argv[argv.index("-accel") + 1] == "kvm" and "-no-reboot" in argv
    assert "panic=-1" in argv[argv.index("-append") + 1]


def test_qemu_verb_takes_kernel_from_its_command_line() -> None:
    assert split_kernel_argument(["-kernel", "/k", "-snapshot"]) == (Path("/k"), ["-snapshot"])
    assert split_kernel_argument(["-m", "1G"]) == (None, ["-m", "1G"])


def test_uki_is_handed_to_ovmf_as_kernel(env: dict[str, Any]) -> None:
    uki = disk_image(env, "image.efi")
    with q.qemu_machine(config_for(env, "--format=uki"), tools_tree=env["tree"]) as vm:
        assert vm.firmware == "uefi" and vm.disk is None
        assert value_after(vm.argv, "-kernel") == [str(uki)]
        assert "-append" not in vm.argv
    with pytest.raises(RunError, match="cannot boot a UKI"), q.qemu_machine(
            config_for(env, "--format=uki", "--qemu-firmware=linux"), tools_tree=env["tree"]):
        pass


def test_cpio_boots_directly_with_the_split_kernel(env: dict[str, Any]) -> None:
    archive = disk_image(env, "image.cpio")
    (env["out"] / "image.vmlinuz").write_text("k")
    with q.qemu_machine(config_for(env, "--format=cpio", "--compress-output=no"), tools_tree=env["tree"]) as vm:
        assert value_after(vm.argv, "-initrd") == [str(archive)]
        assert value_after(vm.argv, "-kernel") == [str(env["out"] / "image.vmlinuz")]
        assert "root=" not in value_after(vm.argv, "-append")[0]


def test_scratch_of_a_killed_run_is_swept(tmp_path: Path) -> None:
    from imagebuild.launch.lifetime import make_scratch

    stale = tmp_path / "imagebuild-qemu-stale"
    stale.mkdir()
    (stale / "owner.pid").write_text("999999999\n")
    alive = tmp_path / "imagebuild-qemu-alive"
    alive.mkdir()
    (alive / "owner.pid").write_text(f"{os.getpid()}\n")
    scratch = make_scratch(tmp_path, "imagebuild-qemu-")
    assert not stale.exists() and alive.exists() and scratch.exists()
    assert (scratch / "owner.pid").read_text().strip().isdigit()


# ---- overlays, vCPUs and the accelerator note --------------------------------------------------------


def test_a_second_boot_in_the_same_directory_keeps_overlay_and_variables(env: dict[str, Any],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner's machine started again after a crash boots the disk and firmware variables it had."""
    disk_image(env)
    made: list[Path] = []

    def fake_overlay(source: Path, overlay: Path, *, size: int | None, tools_tree: Path | None) -> None:
        made.append(overlay)
        overlay.write_bytes(b"QFI\xfb")

    monkeypatch.setattr(q, "qcow2_overlay", fake_overlay)
    state = env["tmp"] / "state"
    state.mkdir()
    config = config_for(env, "--format=disk")
    options = q.QemuOptions(overlay=True, scratch=state)
    with q.qemu_machine(config, tools_tree=env["tree"], options=options):
        (state / "overlay.qcow2").write_bytes(b"QFI\xfb written by the guest")
        (state / "ovmf-vars.fd").write_text("enrolled keys")
    with q.qemu_machine(config, tools_tree=env["tree"], options=options) as vm:
        assert vm.disk == state / "overlay.qcow2" and made == [state / "overlay.qcow2"]
        assert vm.disk.read_bytes() == b"QFI\xfb written by the guest"
        assert (state / "ovmf-vars.fd").read_text() == "enrolled keys"


def test_overlay_is_a_qcow2_over_the_image_in_the_callers_directory(env: dict[str, Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    image = disk_image(env)
    made: list[tuple[Path, Path, int | None]] = []

    def fake_overlay(source: Path, overlay: Path, *, size: int | None, tools_tree: Path | None) -> None:
        made.append((source, overlay, size))
        overlay.write_bytes(b"QFI\xfb")

    monkeypatch.setattr(q, "qcow2_overlay", fake_overlay)
    state = env["tmp"] / "state"
    state.mkdir()
    config = config_for(env, "--format=disk", "--runtime-size=1G")
    with q.qemu_machine(config, tools_tree=env["tree"], options=q.QemuOptions(overlay=True, scratch=state)) as vm:
        assert vm.scratch == state and vm.disk == state / "overlay.qcow2"
        assert made == [(image, state / "overlay.qcow2", 1 << 30)]
        drive = next(d for d in value_after(vm.argv, "-drive") if "id=image" in d)
        assert f"file={state / 'overlay.qcow2'}" in drive and "format=qcow2" in drive
        assert f"file={image}" not in " ".join(vm.argv)
    # The caller's directory stays (the caller removes it); the image is untouched.
    assert state.is_dir() and image.read_bytes() == b"disk" * 1024


def test_qcow2_overlay_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("imagebuild.tools.run.run", lambda argv, **kw: calls.append([str(a) for a in argv]) or "")
    image = tmp_path / "image.raw"
    image.write_bytes(b"x" * 4096)
    tree = make_tools_tree(tmp_path / "tools")
    (tree / "usr/bin/qemu-img").write_text("")
    q.qcow2_overlay(image, tmp_path / "o.qcow2", size=1 << 20, tools_tree=tree)
    assert calls == [["/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image),
                      str(tmp_path / "o.qcow2"), str(1 << 20)]]
    calls.clear()
    q.qcow2_overlay(image, tmp_path / "o.qcow2", size=None, tools_tree=tree)
    assert calls[0][-1] == str(tmp_path / "o.qcow2")


def test_tcg_gets_one_vcpu_per_host_core_unless_qemusmp_is_set(env: dict[str, Any],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    disk_image(env)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    with q.qemu_machine(config_for(env, "--format=disk"), tools_tree=env["tree"]) as vm:
        assert value_after(vm.argv, "-smp") == ["6"]
        assert vm.accelerator_note.startswith("accelerator: TCG (multi-threaded, slower than KVM) with 6 vCPUs")
    with q.qemu_machine(config_for(env, "--format=disk", "--qemu-smp=3"), tools_tree=env["tree"]) as vm:
        assert value_after(vm.argv, "-smp") == ["3"]


def test_old_qemu_runs_single_threaded_tcg_with_qemusmp(env: dict[str, Any]) -> None:
    from imagebuild.launch import accel

    config = config_for(env, "--format=disk")
    old = accel.choose(config, kvm=False, reason="QemuKvm=no", version="QEMU emulator version 7.2.19 (Debian)")
    assert old.args() == ["-accel", "tcg,thread=single", "-cpu", "max,la57=off", "-smp", "1"]
    assert "single-threaded" in old.note() and "QemuKvm=no" in old.note()
    new = accel.choose(config, kvm=False, reason="r", version="QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)")
    assert new.multi_threaded and new.smp == str(os.cpu_count())
    kvm_accel = accel.choose(config, kvm=True, reason="a probe boot under KVM worked", version="")
    assert kvm_accel.args()[:2] == ["-accel", "kvm"] and kvm_accel.note().startswith("accelerator: KVM")


@pytest.mark.parametrize(("device", "verdict", "expected"), [
    (False, None, "no usable /dev/kvm"),
    (True, False, "probe boot under KVM failed"),
    (True, True, "probe boot under KVM worked"),
])
def test_the_accelerator_note_says_why(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, device: bool,
                                       verdict: bool | None, expected: str) -> None:
    monkeypatch.setattr(q, "kvm_device_usable", lambda: device)
    monkeypatch.setattr(q, "kvm_works", lambda *a: (bool(verdict), None if verdict else "KVM does not work"))
    reasons: list[str] = []
    config = config_for(env, "--format=disk")
    assert REAL_USE_KVM(config, "qemu", None, None, reasons) is bool(verdict)
    assert len(reasons) == 1 and expected in reasons[0]


def test_network_follows_runtimenetwork_unless_the_caller_decides(env: dict[str, Any]) -> None:
    disk_image(env)
    config = config_for(env, "--format=disk")
    with q.qemu_machine(config, tools_tree=env["tree"]) as vm:
        assert value_after(vm.argv, "-nic") == ["user,model=virtio-net-pci"]
    with q.qemu_machine(config, tools_tree=env["tree"], options=q.QemuOptions(network=False)) as vm:
        assert value_after(vm.argv, "-nic") == ["none"]


@pytest.mark.skipif(shutil.which("bwrap") is None or os.geteuid() != 0, reason="needs bwrap, as root")
def test_swtpm_setup_runs_where_its_orphans_are_reaped_at_once(tmp_path: Path) -> None:
    # What swtpm_setup does: start a process that outlives its parent, then wait until it is gone.
    script = (f'( sleep 0.1 & echo $! >{tmp_path}/pid ); p=$(cat {tmp_path}/pid); '
              'for i in $(seq 100); do kill -0 "$p" 2>/dev/null || exit 0; sleep 0.01; done; exit 1')
    started = time.monotonic()
    subprocess.run([*reaping_namespace(None), "bash", "-c", script], check=True, timeout=30)
    assert time.monotonic() - started < 0.9
    tree = make_tools_tree(tmp_path / "tools")
    assert reaping_namespace(tree)[:2] == ["bwrap", "--unshare-pid"]
