"""The build stage that leaves SSH host keys out of images."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from imagebuild.config.values import TreeSpec
from imagebuild.pipeline import host_keys

KEYGEN = "[Unit]\nConditionFirstBoot=yes\n[Service]\nExecStart=ssh-keygen -A\n"


def image(tmp_path: Path, machine_id: str = "") -> Path:
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    for kind in ("rsa", "ed25519"):
        (root / f"etc/ssh/ssh_host_{kind}_key").write_text("private")
        (root / f"etc/ssh/ssh_host_{kind}_key.pub").write_text("public")
    (root / "etc/ssh/sshd_config").write_text("")
    (root / "etc/machine-id").write_text(machine_id)
    units = root / host_keys.UNIT_DIRECTORY
    units.mkdir(parents=True)
    (units / "ssh.service").write_text("[Service]\nExecStart=/usr/sbin/sshd -D\n")
    (units / "sshd-keygen.service").write_text(KEYGEN)
    return root


def context(root: Path, extra: list[TreeSpec] | None = None) -> Any:
    return SimpleNamespace(root=root, config=SimpleNamespace(skeleton_trees=[], extra_trees=extra or []))


def test_keys_are_removed_and_a_generator_installed_when_first_boot_will_not_happen(tmp_path: Path) -> None:
    root = image(tmp_path)  # empty machine-id: systemd does not count the boot as the first
    host_keys.remove_host_keys(context(root))
    assert sorted(p.name for p in (root / "etc/ssh").iterdir()) == ["sshd_config"]
    unit = root / host_keys.UNIT_DIRECTORY / host_keys.UNIT
    assert "ExecStart=ssh-keygen -A" in unit.read_text() and "Before=ssh.service" in unit.read_text()
    assert (root / host_keys.UNIT_DIRECTORY / "ssh.service.wants" / host_keys.UNIT).is_symlink()


def test_the_images_own_first_boot_generator_is_relied_on_when_it_will_run(tmp_path: Path) -> None:
    root = image(tmp_path, machine_id="uninitialized\n")
    host_keys.remove_host_keys(context(root))
    assert not (root / "etc/ssh/ssh_host_rsa_key").exists()
    assert not (root / host_keys.UNIT_DIRECTORY / host_keys.UNIT).exists()


def test_keys_from_the_users_extra_trees_stay(tmp_path: Path) -> None:
    root = image(tmp_path)
    extra = tmp_path / "extra"
    (extra / "etc/ssh").mkdir(parents=True)
    (extra / "etc/ssh/ssh_host_ed25519_key").write_text("mine")
    host_keys.remove_host_keys(context(root, [TreeSpec(extra, None)]))
    assert (root / "etc/ssh/ssh_host_ed25519_key").exists()
    assert not (root / "etc/ssh/ssh_host_rsa_key").exists()
