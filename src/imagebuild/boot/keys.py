"""Secure Boot keys: a self-signed RSA key pair made with the cryptography library (what genkey writes)."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from imagebuild.errors import ImageBuildError

# Firmware (OVMF, shim) accepts RSA-2048 keys for Secure Boot; larger keys are not universally supported.
KEY_BITS = 2048


@dataclass(frozen=True)
class KeyPair:
    key_pem: bytes
    certificate_pem: bytes


def make_key_pair(common_name: str, valid_days: int, *, now: datetime.datetime | None = None) -> KeyPair:
    """An RSA key and a self-signed X.509 certificate for it, valid for `valid_days` from now."""
    if valid_days <= 0:
        raise ImageBuildError(f"--genkey-valid-days={valid_days}: must be a positive number of days")
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = now or datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
    )


def write_key_pair(pair: KeyPair, key_path: Path, certificate_path: Path, *, force: bool) -> None:
    """Write the key (mode 0600, never readable by others, not even briefly) and the certificate."""
    existing = [p for p in (key_path, certificate_path) if p.exists() or p.is_symlink()]
    if existing and not force:
        raise ImageBuildError(
            f"{', '.join(str(p) for p in existing)} already exist(s); use -f to replace them with a new key"
        )
    for path in existing:
        path.unlink()
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pair.key_pem)
    certificate_path.write_bytes(pair.certificate_pem)
