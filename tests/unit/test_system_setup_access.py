"""Ssh=, Autologin= and MakeInitrd=: the files written into the image."""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imagebuild.config import Config, load
from imagebuild.context import Context
from imagebuild.errors import BuildError
from imagebuild.pipeline import access


def load_config(directory: Path, text: str) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mkosi.conf").write_text(text)
    _, images = load(["-C", str(directory), "summary"])
    return images[-1]


def make_context(tmp_path: Path, text: str, programs: tuple[str, ...] = ("login", "agetty")) -> Context:
    config = load_config(tmp_path / "conf", text)
    context = Context(config, tmp_path / "ws", tmp_path / "cache")
    for relative in ("usr/bin", "usr/sbin", "usr/lib/systemd", "etc"):
        (context.root / relative).mkdir(parents=True, exist_ok=True)
    for name in programs:
        (context.root / "usr/bin" / name).write_text("")
        (context.root / "usr/bin" / name).chmod(0o755)
    return context


def write_key_pair(directory: Path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ssh.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "ssh.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / "ssh.key").chmod(0o600)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def test_autologin_dropins_for_every_console(tmp_path: Path) -> None:
    context = make_context(tmp_path, "[Content]\nAutologin=yes\n")
    access.configure_access(context)
    units = context.root / "usr/lib/systemd/system"
    written = sorted(p.parent.name for p in units.glob("*.d/autologin.conf"))
    assert written == sorted(f"{c.unit}.d" for c in access.AUTOLOGIN_CONSOLES)
    assert {"console-getty.service.d", "container-getty@.service.d", "getty@tty1.service.d",
            "serial-getty@ttyS0.service.d"} <= set(written)
    text = (units / "serial-getty@ttyS0.service.d/autologin.conf").read_text()
    lines = text.splitlines()
    assert lines[:2] == ["[Service]", "ExecStart="]
    assert lines[2].startswith("ExecStart=-agetty ") and "--autologin root" in lines[2]
    # systemd unescapes \\u to agetty's \u (the user name).
    assert "'-p -f -- \\\\u'" in lines[2] and lines[2].endswith("- $TERM")


def test_autologin_warns_without_login(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    context = make_context(tmp_path, "[Content]\nAutologin=yes\n", programs=("agetty",))
    access.configure_access(context)
    assert "add login to Packages=" in caplog.text


def test_nothing_configured_writes_nothing(tmp_path: Path) -> None:
    context = make_context(tmp_path, "")
    access.configure_access(context)
    assert not (context.root / "usr/lib/systemd/system").exists()
    assert not (context.root / "init").is_symlink()


def test_ssh_units_preset_and_key_from_certificate(tmp_path: Path) -> None:
    public = write_key_pair(tmp_path / "conf")
    context = make_context(tmp_path, "[Host]\nSshCertificate=ssh.crt\n[Content]\nSsh=yes\n")
    access.configure_access(context)
    units = context.root / "usr/lib/systemd/system"
    socket = (units / access.SSH_SOCKET).read_text()
    assert "ListenStream=vsock::22" in socket and "Accept=yes" in socket
    assert access.SSH_SOCKET.removesuffix(".socket") + "@.service" == access.SSH_SERVICE
    assert "StandardInput=socket" in (units / access.SSH_SERVICE).read_text()
    preset = context.root / "usr/lib/systemd/system-preset/80-imagebuild-ssh.preset"
    assert preset.read_text() == f"enable {access.SSH_SOCKET}\n"
    keys = context.root / "root/.ssh/authorized_keys"
    assert keys.read_text().split()[:2] == public.split()[:2]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.parent.stat().st_mode) == 0o700
    # Running the step again (or a key already there) adds no second line.
    access.configure_access(context)
    assert len(keys.read_text().splitlines()) == 1


def test_ssh_key_from_private_key_when_no_certificate(tmp_path: Path) -> None:
    public = write_key_pair(tmp_path / "conf")
    context = make_context(tmp_path, "[Host]\nSshKey=ssh.key\n[Content]\nSsh=yes\n")
    access.configure_access(context)
    assert (context.root / "root/.ssh/authorized_keys").read_text().split()[:2] == public.split()[:2]


def test_ssh_certificate_that_is_not_pem_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/ssh.crt").write_text("not a certificate\n")
    context = make_context(tmp_path, "[Host]\nSshCertificate=ssh.crt\n[Content]\nSsh=yes\n")
    with pytest.raises(BuildError, match=r"SshCertificate=.*ssh\.crt.*genkey"):
        access.configure_access(context)


def test_make_initrd_links_release_and_init(tmp_path: Path) -> None:
    context = make_context(tmp_path, "[Content]\nMakeInitrd=yes\n")
    (context.root / "usr/lib/systemd/systemd").write_text("")
    (context.root / "etc/os-release").write_text("ID=debian\n")
    access.configure_access(context)
    assert os.readlink(context.root / "etc/initrd-release") == "os-release"
    assert (context.root / "etc/initrd-release").read_text() == "ID=debian\n"
    assert os.readlink(context.root / "init") == "usr/lib/systemd/systemd"


def test_make_initrd_keeps_an_existing_init(tmp_path: Path) -> None:
    context = make_context(tmp_path, "[Content]\nMakeInitrd=yes\n")
    (context.root / "usr/lib/systemd/systemd").write_text("")
    (context.root / "init").write_text("#!/bin/sh\n")
    access.configure_access(context)
    assert (context.root / "init").read_text() == "#!/bin/sh\n"


def test_make_initrd_needs_systemd(tmp_path: Path) -> None:
    context = make_context(tmp_path, "[Content]\nMakeInitrd=yes\n")
    with pytest.raises(BuildError, match="MakeInitrd=yes needs systemd"):
        access.configure_access(context)
