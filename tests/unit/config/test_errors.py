"""Error messages: file:line, the setting, what was wrong, what is accepted; secrets; checks."""

from __future__ import annotations

import logging

import pytest

from imagebuild.config import ConfigError

from .conftest import Tree


def error(tree: Tree, text: str, *argv: str, name: str = "mkosi.conf") -> str:
    tree.write(name, text)
    with pytest.raises(ConfigError) as e:
        tree.load(*argv)
    return str(e.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Content]\nPackage=vim\n", "mkosi.conf:2: unknown setting 'Package' in [Content]; did you mean Packages=?"),
        ("[Content]\npackages=vim\n", "did you mean Packages=?"),
        ("[Distribution]\nDistro=debian\n", "unknown setting 'Distro'"),
        ("[Output]\nFormat=qcow2\n",
         "mkosi.conf:2: Format=qcow2: 'qcow2' is not a valid value (accepted: directory, tar, cpio, disk, uki, "
         "esp, sysext, confext, portable, none)"),
        ("[Content]\nWithDocs=perhaps\n",
         "mkosi.conf:2: WithDocs=perhaps: 'perhaps' is not a boolean (accepted: 1, yes"),
        ("[Output]\nCompressLevel=high\n", "CompressLevel=high: 'high' is not a whole number"),
        ("[Output]\nCompressLevel=-1\n", "'-1' is negative"),
        ("[Output]\nOutput=dir/name\n", "Output=dir/name: 'dir/name' is not a file name"),
        ("[Output]\nSectorSize=100\n", "accepted: 512, 1024, 2048 or 4096"),
        ("[Output]\nSeed=abc\n", "'abc' is not a UUID"),
        ("[Host]\nRuntimeSize=big\n", "'big' is not a size"),
        ("[Host]\nQemuSmp=0\n", "'0' is not a positive whole number"),
        ("[Host]\nQemuMem=lots\n", "'lots' is not a memory size"),
        ("[Host]\nQemuVsockConnectionId=1\n", "outside the range"),
        ("[Host]\nQemuDrives=:10G\n", "has no ID"),
        ("[Host]\nQemuDrives=disk\n", "has no size"),
        ("[Validation]\nSecureBootKeySource=tpm\n", "not a key source (accepted: file, or engine:NAME"),
        ("[Content]\nPrepareScripts=missing.sh\n", "mkosi.conf:2: PrepareScripts=missing.sh: "),
        ("[Config]\nProfile=a/b\n", "not a profile name"),
        ("[Config]\nMinimumVersion=abc\n", "'abc' is not a version"),
        ("[Content]\nSourceDateEpoch=yesterday\n", "not a whole number"),
        ("[Content]\nEnvironment='unbalanced\n", "cannot be split"),
    ],
)
def test_value_errors(tree: Tree, text: str, expected: str) -> None:
    assert expected in error(tree, text)


def test_error_in_a_dropin_names_the_dropin(tree: Tree) -> None:
    message = error(tree, "[Content]\n\n\nBootable=sometimes\n", name="mkosi.conf.d/20-boot.conf")
    assert "mkosi.conf.d/20-boot.conf:4: Bootable=sometimes:" in message
    assert "accepted: auto, 1, yes" in message


def test_multi_line_values_are_shortened_in_errors(tree: Tree) -> None:
    message = error(tree, "[Output]\nFormat=\n    tar\n    more\n")
    assert "Format=..." not in message and "is not a valid value" in message


def test_setting_in_the_wrong_section_is_applied_with_a_warning(
    tree: Tree, caplog: pytest.LogCaptureFixture
) -> None:
    tree.write("mkosi.conf", "[Output]\nPackages=vim\n")
    with caplog.at_level(logging.WARNING):
        assert tree.one().packages == ["vim"]
    assert "mkosi.conf:2: Packages= belongs in the [Content] section, not [Output]" in caplog.text


def test_unknown_section_is_ignored_with_a_warning(tree: Tree, caplog: pytest.LogCaptureFixture) -> None:
    tree.write("mkosi.conf", "[Contnet]\nPackages=vim\n[Partition]\nType=root\n")
    with caplog.at_level(logging.WARNING):
        assert tree.one().packages == []
    assert "unknown section [Contnet], its settings are ignored (did you mean [Content]?)" in caplog.text


def test_deprecated_names_still_work(tree: Tree, caplog: pytest.LogCaptureFixture) -> None:
    tree.write("build.sh", "#!/bin/sh\n", mode=0o755)
    tree.write("mkosi.conf", "[Content]\nBuildScript=build.sh\n")
    with caplog.at_level(logging.WARNING):
        assert tree.one().build_scripts == [tree.root / "build.sh"]
    assert "BuildScript= is a deprecated name, use BuildScripts= instead" in caplog.text


@pytest.mark.parametrize("name", ["mkosi.rootpw", "mkosi.passphrase", "mkosi.key"])
def test_secret_files_readable_by_others_are_refused(tree: Tree, name: str) -> None:
    path = tree.write(name, "secret\n", mode=0o644)
    message = error(tree, "")
    assert str(path) in message
    assert "mode 0644" in message and f"chmod 600 {path}" in message


def test_secret_files_of_owner_and_group_are_accepted(tree: Tree) -> None:
    tree.write("mkosi.rootpw", "pw\n", mode=0o640)
    tree.write("mkosi.passphrase", "pw", mode=0o600)
    c = tree.one()
    assert c.root_password is not None and c.root_password.value == "pw"


def test_explicit_secret_settings_are_checked_too(tree: Tree) -> None:
    tree.write("keys/ssh.key", "k", mode=0o604)
    message = error(tree, "[Host]\nSshKey=keys/ssh.key\n")
    assert "mkosi.conf:2: SshKey=keys/ssh.key:" in message and "chmod 600" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Validation]\nSecureBoot=yes\n", "SecureBoot=yes needs SecureBootKey= and SecureBootCertificate="),
        ("[Output]\nOverlay=yes\n", "Overlay=yes only works together with BaseTrees="),
        ("[Host]\nIncremental=yes\n", "Incremental=yes needs a cache directory"),
        ("[Config]\nMinimumVersion=23\n", "MinimumVersion=23: this configuration needs mkosi 23 or newer"),
    ],
)
def test_checks_after_resolution(tree: Tree, text: str, expected: str) -> None:
    assert expected in error(tree, text)


def test_minimum_version_up_to_22_is_fine(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Config]\nMinimumVersion=22\n")
    assert tree.one().minimum_version == "22"


def test_unreadable_file(tree: Tree) -> None:
    (tree.root / "mkosi.conf").write_bytes(b"[Content]\nHostname=\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"mkosi\.conf: not a text file"):
        tree.load()


def test_mkosi_conf_syntax_error(tree: Tree) -> None:
    assert "mkosi.conf:1: 'Hostname=x' is outside of any section" in error(tree, "Hostname=x\n")
