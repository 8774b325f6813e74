"""genkey: mkosi.key (0600) and mkosi.crt with the requested CN and validity; no overwrite without -f."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.helpers import imagebuild


def test_genkey_writes_key_and_certificate(tmp_path: Path) -> None:
    result = imagebuild("-C", str(tmp_path), "--genkey-common-name=example %u", "--genkey-valid-days=10",
                        "genkey")
    assert result.returncode == 0, result.stderr
    key_path, crt_path = tmp_path / "mkosi.key", tmp_path / "mkosi.crt"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    certificate = x509.load_pem_x509_certificate(crt_path.read_bytes())
    cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(cn, str) and cn.startswith("example ") and "%u" not in cn
    assert certificate.issuer == certificate.subject
    valid = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert valid.days == 10
    public = certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()


def test_genkey_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert imagebuild("-C", str(tmp_path), "genkey").returncode == 0
    before = (tmp_path / "mkosi.key").read_bytes()
    refused = imagebuild("-C", str(tmp_path), "genkey")
    assert refused.returncode != 0
    assert "already exist" in refused.stderr and "-f" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (tmp_path / "mkosi.key").read_bytes() == before
    forced = imagebuild("-C", str(tmp_path), "-f", "genkey")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "mkosi.key").read_bytes() != before
    assert stat.S_IMODE(os.stat(tmp_path / "mkosi.key").st_mode) == 0o600


def test_genkey_bad_validity(tmp_path: Path) -> None:
    result = imagebuild("-C", str(tmp_path), "--genkey-valid-days=soon", "genkey")
    assert result.returncode != 0 and "--genkey-valid-days=soon" in result.stderr
    assert not (tmp_path / "mkosi.key").exists()


def test_generated_key_is_the_default_for_secure_boot_and_ssh(tmp_path: Path) -> None:
    from imagebuild.config import load

    assert imagebuild("-C", str(tmp_path), "genkey").returncode == 0
    _, images = load(["-C", str(tmp_path), "summary"])
    config = images[-1]
    assert config.secure_boot_key == tmp_path / "mkosi.key"
    assert config.secure_boot_certificate == tmp_path / "mkosi.crt"
    assert config.ssh_key == tmp_path / "mkosi.key"
    assert config.ssh_certificate == tmp_path / "mkosi.crt"
