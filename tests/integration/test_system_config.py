"""One real Debian trixie build that configures the installed system (steps 17, 19-25 of the execution flow):
Ssh=, Autologin=, MakeInitrd=, sysusers, tmpfiles, preset-all, depmod, firstboot settings, hwdb and the
cleanup settings; checked in the built tree and by booting it in a container (autologin, timezone, shell).
"""

from __future__ import annotations

import datetime
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

PASSWORD = "imagebuild-Secret-1"
KERNEL = "6.12.0-imagebuild-test"

CONFIG = """\
[Distribution]
Distribution=debian
Release=trixie

[Output]
Format=directory
ImageId=sysconfig

[Host]
SshCertificate=ssh.crt

[Content]
Packages=systemd systemd-sysv udev kmod tzdata login less
Hostname=sysconfig-test
Ssh=yes
Autologin=yes
MakeInitrd=yes
Locale=C.UTF-8
LocaleMessages=C.UTF-8
Timezone=Europe/Berlin
RootShell=/bin/sh
RemovePackages=less
RemoveFiles=/etc/imagebuild-remove-me,/usr/share/imagebuild-test/*.remove
CleanPackageMetadata=yes
"""

EXTRA_FILES = {
    # sysusers must run before tmpfiles: the directory belongs to the user sysusers creates.
    "usr/lib/sysusers.d/imagebuild-test.conf": 'u imagebuild-test - "imagebuild test user"\n',
    "usr/lib/tmpfiles.d/imagebuild-test.conf": "d /var/lib/imagebuild-test 0750 imagebuild-test - -\n",
    "usr/lib/udev/hwdb.d/99-imagebuild-test.hwdb": "usb:v1D6Bp0104*\n ID_IMAGEBUILD_TEST_MARK=1\n",
    f"usr/lib/modules/{KERNEL}/kernel/.keep": "",
    "etc/imagebuild-remove-me": "x\n",
    "usr/share/imagebuild-test/a.remove": "x\n",
    "usr/share/imagebuild-test/b.keep": "x\n",
}


def write_certificate(directory: Path) -> str:
    """A self-signed certificate as SshCertificate= wants it; returns the OpenSSH form of its key."""
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagebuild test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, None)
    )
    (directory / "ssh.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    base = tmp_path_factory.mktemp("sysconfig")
    conf = write_config(base / "conf", CONFIG)
    for relative, text in EXTRA_FILES.items():
        path = conf / "mkosi.extra" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    rootpw = conf / "mkosi.rootpw"
    rootpw.write_text(PASSWORD + "\n")
    rootpw.chmod(0o600)
    public_key = write_certificate(conf)
    out = base / "out"
    result = imagebuild("-C", str(conf), f"--output-dir={out}", "build")
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stderr
    yield out / "sysconfig", public_key


def test_root_password_is_hashed_and_verifies(built: tuple[Path, str]) -> None:
    tree, _ = built
    entry = next(line for line in (tree / "etc/shadow").read_text().splitlines() if line.startswith("root:"))
    hashed = entry.split(":")[1]
    assert hashed.startswith("$6$") and PASSWORD not in hashed
    salt = hashed.split("$")[2]
    # An independent implementation (OpenSSL) must compute the same hash from the password.
    expected = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=PASSWORD,
                              capture_output=True, text=True, check=True).stdout.strip()
    assert hashed == expected
    credential = tree / "usr/lib/credstore/passwd.hashed-password.root"
    assert credential.read_text() == hashed
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    assert stat.S_IMODE((tree / "usr/lib/credstore").stat().st_mode) == 0o700


def test_firstboot_settings_and_credentials(built: tuple[Path, str]) -> None:
    tree, _ = built
    assert os.readlink(tree / "etc/localtime").endswith("zoneinfo/Europe/Berlin")
    assert "LANG=C.UTF-8" in (tree / "etc/locale.conf").read_text()
    assert "root:x:0:0:root:/root:/bin/sh" in (tree / "etc/passwd").read_text()
    credstore = tree / "usr/lib/credstore"
    assert (credstore / "firstboot.timezone").read_text() == "Europe/Berlin"
    assert (credstore / "firstboot.locale").read_text() == "C.UTF-8"
    assert (credstore / "firstboot.locale-messages").read_text() == "C.UTF-8"
    assert (credstore / "passwd.shell.root").read_text() == "/bin/sh"
    assert (tree / "etc/hostname").read_text() == "sysconfig-test\n"


def test_sysusers_then_tmpfiles(built: tuple[Path, str]) -> None:
    tree, _ = built
    users = {line.split(":")[0]: int(line.split(":")[2]) for line in (tree / "etc/passwd").read_text().splitlines()}
    assert "imagebuild-test" in users
    directory = tree / "var/lib/imagebuild-test"
    assert directory.is_dir() and directory.stat().st_uid == users["imagebuild-test"]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o750


def test_ssh_units_enabled_with_key(built: tuple[Path, str]) -> None:
    tree, public_key = built
    units = tree / "usr/lib/systemd/system"
    assert "ListenStream=vsock::22" in (units / "imagebuild-sshd-vsock.socket").read_text()
    assert "sshd -i" in (units / "imagebuild-sshd-vsock@.service").read_text()
    # preset-all enabled it through our preset file.
    assert (tree / "etc/systemd/system/sockets.target.wants/imagebuild-sshd-vsock.socket").is_symlink()
    keys = tree / "root/.ssh/authorized_keys"
    assert public_key.split()[:2] == keys.read_text().split()[:2]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600


def test_initrd_files_depmod_and_hwdb(built: tuple[Path, str]) -> None:
    tree, _ = built
    assert os.readlink(tree / "etc/initrd-release") == "os-release"
    assert (tree / "etc/initrd-release").read_text() == (tree / "etc/os-release").read_text()
    assert os.readlink(tree / "init") == "usr/lib/systemd/systemd"
    assert (tree / f"usr/lib/modules/{KERNEL}/modules.dep").exists()
    assert (tree / f"usr/lib/modules/{KERNEL}/modules.dep.bin").exists()
    assert b"ID_IMAGEBUILD_TEST_MARK" in (tree / "usr/lib/udev/hwdb.bin").read_bytes()


def test_removed_packages_files_and_metadata(built: tuple[Path, str]) -> None:
    tree, _ = built
    assert not (tree / "usr/bin/less").exists()
    assert not (tree / "etc/imagebuild-remove-me").exists()
    assert not (tree / "usr/share/imagebuild-test/a.remove").exists()
    assert (tree / "usr/share/imagebuild-test/b.keep").exists()
    # CleanPackageMetadata=yes: no dpkg or apt databases left.
    assert not (tree / "var/lib/dpkg").exists()
    assert not (tree / "var/lib/apt").exists()
    assert (tree / "usr/bin/dpkg").exists()


def test_etc_and_var_are_marked_up_to_date_with_usr(built: tuple[Path, str]) -> None:
    tree, _ = built
    usr = (tree / "usr").stat().st_mtime_ns
    for directory in ("etc", "var"):
        stamp = tree / directory / ".updated"
        assert stamp.stat().st_mtime_ns == usr and f"TIMESTAMP_NSEC={usr}\n" in stamp.read_text()
    # The work of the units that then skip at boot was done by the build.
    assert (tree / "etc/ld.so.cache").stat().st_size > 0
    assert (tree / "var/lib/systemd/catalog/database").stat().st_size > 0


def test_boot_logs_root_in_with_its_shell_and_timezone(built: tuple[Path, str]) -> None:
    tree, _ = built
    # --timezone=off: nspawn would otherwise replace the image's zone by the host's.
    # SYSTEMD_IN_INITRD=0: the tree has /etc/initrd-release (MakeInitrd=yes) but is booted as a system.
    console = pexpect.spawn(
        "systemd-nspawn",
        ["--register=no", "--keep-unit", "--volatile=overlay", "--timezone=off",
         "--setenv=SYSTEMD_IN_INITRD=0", "-D", str(tree), "--boot"],
        encoding="utf-8", codec_errors="replace", timeout=90,
    )
    try:
        # No password is typed: the prompt of root's shell (/bin/sh, RootShell=) appears by itself.
        # agetty's "(automatic login)" is not waited for: systemd's status lines can split it on a busy host.
        seen = console.expect([r"\r\n# ", r"[Pp]assword:"])
        assert seen == 0, f"no automatic login: {console.before[-300:]!r}{console.after!r}"
        console.sendline('echo "ZONE=$(date +%Z) SHELL=$0 USER=$(id -un) DONE-$((6*7))"')
        console.expect(r"ZONE=(\S+) SHELL=(\S+) USER=(\S+) DONE-42")
        zone, shell, user = console.match.groups()
        assert zone in ("CET", "CEST")
        assert shell == "-sh" and user == "root"
        # /etc/.updated and /var/.updated: the first-boot update units were checked and skipped.
        console.sendline("for u in ldconfig systemd-journal-catalog-update systemd-update-done; do "
                         "systemctl show -p ConditionResult -p ConditionTimestampMonotonic $u.service; "
                         "done | tr '\\n' ' '; echo CHECKED")
        console.expect(r"(Condition\S+ ?)+ CHECKED")
        shown = console.match.group(0).split()
        assert shown.count("ConditionResult=no") == 3, shown
        assert "ConditionTimestampMonotonic=0" not in shown, shown
        console.sendline("poweroff")
        console.expect(pexpect.EOF)
    finally:
        if console.isalive():
            # SIGTERM makes nspawn power the container off; SIGKILL would leave it running.
            console.kill(signal.SIGTERM)
            console.expect(pexpect.EOF, timeout=30)
        console.close(force=True)
