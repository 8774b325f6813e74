"""Tools and keys the later stages need are checked before any work (pipeline.preflight)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.errors import BuildError
from imagebuild.pipeline import pipeline, tool_checks
from tests.helpers import write_config


def config(tmp_path: Path, text: str) -> Config:
    write_config(tmp_path / "conf", "[Distribution]\nDistribution=debian\nRelease=trixie\n" + text)
    _, images = load(["-C", str(tmp_path / "conf"), f"--output-dir={tmp_path}/out", "build"])
    return images[-1]


def fake_repart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    bin_dir = tmp_path / f"bin-{version}"
    bin_dir.mkdir()
    repart = bin_dir / "systemd-repart"
    repart.write_text(f"#!/bin/sh\necho 'systemd {version} ({version}.1-1)'\necho '+PAM +AUDIT'\n")
    repart.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


class NoWork:
    """Stands in for the workspace: entering it is the start of the build's work."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the build started although a check had to fail")


def test_disk_build_with_an_old_host_repart_fails_before_any_work(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fake_repart(tmp_path, monkeypatch, "252")
    monkeypatch.setattr(pipeline, "Workspace", NoWork)
    with pytest.raises(BuildError) as e:
        pipeline.build_image(config(tmp_path, "[Output]\nFormat=disk\n[Content]\nBootable=no\n"))
    assert "systemd-repart 252 on this host is too old: version 254 or newer is needed" in str(e.value)
    assert "set ToolsTree=default" in str(e.value)


def test_new_enough_repart_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_repart(tmp_path, monkeypatch, "257")
    pipeline.preflight(config(tmp_path, "[Output]\nFormat=disk\n[Content]\nBootable=no\n"))


def test_directory_build_needs_no_repart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_repart(tmp_path, monkeypatch, "252")
    pipeline.preflight(config(tmp_path, "[Output]\nFormat=directory\n"))


def test_default_tools_tree_is_checked_once_it_exists_not_the_host(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fake_repart(tmp_path, monkeypatch, "252")
    c = config(tmp_path, "[Output]\nFormat=disk\n[Content]\nBootable=no\n[Host]\nToolsTree=default\n")
    tool_checks.preflight(c)
    checked: list[Path | None] = []
    monkeypatch.setattr(tool_checks, "check_build_tools", lambda _config, tree: checked.append(tree))
    tool_checks.after_default_tools_tree(c, tmp_path / "tree")
    assert checked == [tmp_path / "tree"]


def test_missing_mkfs_for_a_partition_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_repart(tmp_path, monkeypatch, "257")
    (tmp_path / "conf/mkosi.repart").mkdir(parents=True)
    (tmp_path / "conf/mkosi.repart/10-root.conf").write_text("[Partition]\nType=root\nFormat=imagebuildfs\n")
    (tmp_path / "conf/mkosi.repart/20-usr.conf").write_text("[Partition]\nType=usr\nFormat=btrfs\n")
    monkeypatch.setitem(tool_checks.MKFS_TOOLS, "btrfs", (("mkfs.imagebuild-missing", "btrfs-progs"),))
    with pytest.raises(BuildError, match=r"'mkfs.imagebuild-missing' was not found on this host \(install the "
                                         r"Debian package 'btrfs-progs'\); or set ToolsTree=default"):
        pipeline.preflight(config(tmp_path, "[Output]\nFormat=disk\n"))


def test_ukify_and_sbsign_are_looked_for_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BuildError, match="'ukify' was not found on this host"):
        tool_checks.check_build_tools(config(tmp_path, "[Output]\nFormat=uki\n"), None)
    (tmp_path / "conf/mkosi.key").write_text("key")
    (tmp_path / "conf/mkosi.key").chmod(0o600)
    (tmp_path / "conf/mkosi.crt").write_text("crt")
    signed = config(tmp_path, "[Output]\nFormat=directory\n[Validation]\nSecureBoot=yes\n")
    with pytest.raises(BuildError, match="'sbsign' was not found on this host"):
        tool_checks.check_build_tools(signed, None)


def test_missing_secure_boot_key_file_fails_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "Workspace", NoWork)
    (tmp_path / "cert.pem").write_text("crt")
    c = config(tmp_path, "[Validation]\nSecureBoot=yes\nSecureBootKey=/nonexistent/key.pem\n"
               f"SecureBootCertificate={tmp_path}/cert.pem\n")
    with pytest.raises(BuildError, match=r"SecureBootKey=/nonexistent/key\.pem: no such file"):
        pipeline.build_image(c)
