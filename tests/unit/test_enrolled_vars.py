"""Firmware variables with the image's Secure Boot keys enrolled, made once per cache entry
(pytest_mkosi.enrolled_vars), and the qemu argv that starts a machine from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagebuild.config import Config
from imagebuild.launch import qemu as q
from pytest_mkosi import enrolled_vars
from pytest_mkosi.root_disks import forget_root_disk
from tests.unit.test_qemu import config_for, disk_image, env, value_after

__all__ = ["env"]  # the fixture, used by name


def test_a_machine_starts_from_the_given_variables(env: dict[str, Any]) -> None:
    disk_image(env)
    enrolled = env["tmp"] / "enrolled.fd"
    enrolled.write_bytes(b"enrolled keys")
    config = config_for(env, "--format=disk", "--qemu-firmware=uefi-secure-boot")
    options = q.QemuOptions(firmware_variables=enrolled)
    with q.qemu_machine(config, tools_tree=env["tree"], options=options) as vm:
        pflash = [d for d in value_after(vm.argv, "-drive") if d.startswith("if=pflash")]
        assert "OVMF_CODE_4M.secboot.fd" in pflash[0]
        copy = vm.scratch / "ovmf-vars.fd"
        assert f"file={copy}" in pflash[1] and copy.read_bytes() == b"enrolled keys"
    assert enrolled.read_bytes() == b"enrolled keys"  # only the machine's copy is written


def signed_config(env: dict[str, Any], *args: str) -> Config:
    key, certificate = env["tmp"] / "mkosi.key", env["tmp"] / "mkosi.crt"
    key.write_text("key")
    key.chmod(0o600)
    certificate.write_text("certificate")
    return config_for(env, "--format=disk", "--bootable=yes", "--bootloader=systemd-boot", "--secure-boot=yes",
                      f"--secure-boot-key={key}", f"--secure-boot-certificate={certificate}", *args)


def test_only_a_signed_systemd_boot_disk_from_empty_variables_enrolls(env: dict[str, Any]) -> None:
    assert enrolled_vars.enrolls_keys(signed_config(env))
    assert not enrolled_vars.enrolls_keys(config_for(env, "--format=disk"))
    assert not enrolled_vars.enrolls_keys(signed_config(env, "--secure-boot-auto-enroll=no"))
    assert not enrolled_vars.enrolls_keys(signed_config(env, "--qemu-firmware-variables=microsoft"))
    assert not enrolled_vars.enrolls_keys(signed_config(env, "--qemu-firmware=uefi"))


def cache_entry(tmp_path: Path) -> Path:
    entry = tmp_path / "cache" / "0123abcd"
    entry.mkdir(parents=True)
    Path(f"{entry}.json").write_text("{}")
    image = entry / "disk-example.raw"
    image.write_bytes(b"disk")
    return image


def test_variables_are_made_once_per_entry_and_go_with_it(env: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    boots: list[Path] = []

    def fake_enroll(config: Config, variables: Path, *, tools_tree: Path | None) -> bool:
        boots.append(Path(str(config.output_directory)))
        variables.write_bytes(b"enrolled")
        return True

    monkeypatch.setattr(enrolled_vars, "enroll", fake_enroll)
    image = cache_entry(tmp_path)
    config = signed_config(env)
    made = enrolled_vars.enrolled_variables(config, image, tools_tree=None)
    assert made == Path(f"{image.parent}.ovmf-vars.fd") and made.read_bytes() == b"enrolled"
    assert enrolled_vars.enrolled_variables(config, image, tools_tree=None) == made
    assert boots == [image.parent]  # booted once, from the cache entry's image
    forget_root_disk(image.parent)
    assert not made.exists()


def test_an_image_that_enrolls_nothing_is_marked_and_not_booted_again(
        env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = [False]
    monkeypatch.setattr(enrolled_vars, "enroll", lambda *a, **k: outcomes.pop())
    image = cache_entry(tmp_path)
    config = signed_config(env)
    assert enrolled_vars.enrolled_variables(config, image, tools_tree=None) is None
    assert enrolled_vars.enrolled_variables(config, image, tools_tree=None) is None  # no second boot
    assert Path(f"{image.parent}.ovmf-vars.none").exists()


def test_nothing_is_made_beside_an_image_outside_the_cache(env: dict[str, Any], tmp_path: Path) -> None:
    image = disk_image(env)
    assert enrolled_vars.enrolled_variables(signed_config(env), image, tools_tree=None) is None
    assert not list(image.parent.glob("*.ovmf-vars*")) and not list(image.parent.parent.glob("*.ovmf-vars*"))
