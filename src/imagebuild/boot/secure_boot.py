"""Secure Boot: signing PE binaries with sbsign, and the key files systemd-boot enrolls (SecureBootAutoEnroll=).

The .auth files are written here with the cryptography library, not with sbvarsign: OVMF (which insists
on a self-signed PK) rejected the PK.auth of trixie's sbvarsign 0.9.4 with "Security violation", while
the same structure built to the UEFI spec (detached PKCS#7 SignedData without signed attributes) enrolls.

Enrollment: systemd-boot (loader.conf `secure-boot-enroll force`) writes loader/keys/auto/{PK,KEK,db}.auth
into the firmware when it finds it in setup mode (OVMF started with variables that hold no keys). All three
are EFI signature lists holding our certificate, signed with our key (a self-signed PK).
"""

from __future__ import annotations

import datetime
import struct
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from imagebuild.boot.toolchain import run_tool, tool
from imagebuild.config.enums import KeySourceType, SecureBootSignTool
from imagebuild.errors import BuildError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from imagebuild.config import Config
    from imagebuild.context import Context

# NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS: what
# systemd-boot passes to SetVariable(), and so what the signature must cover.
AUTH_ATTRIBUTES = 0x01 | 0x02 | 0x04 | 0x20
EFI_GLOBAL_VARIABLE_GUID = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
IMAGE_SECURITY_DATABASE_GUID = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
EFI_CERT_X509_GUID = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
EFI_CERT_TYPE_PKCS7_GUID = uuid.UUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
WIN_CERT_TYPE_EFI_GUID = 0x0EF1
ENROLLED_VARIABLES = ("PK", "KEK", "db")


def signing_files(config: Config) -> tuple[Path, Path]:
    """SecureBootKey= and SecureBootCertificate=, checked to be usable files."""
    if config.secure_boot_key_source.type != KeySourceType.file:
        raise BuildError(
            f"not supported yet: SecureBootKeySource={config.secure_boot_key_source} (only file keys)"
        )
    if config.secure_boot_sign_tool == SecureBootSignTool.pesign:
        raise BuildError("not supported yet: SecureBootSignTool=pesign (use sbsign or auto)")
    key, certificate = config.secure_boot_key, config.secure_boot_certificate
    if key is None or certificate is None:
        raise BuildError("SecureBoot=yes needs SecureBootKey= and SecureBootCertificate= (imagebuild genkey)")
    for setting, path in (("SecureBootKey", key), ("SecureBootCertificate", certificate)):
        if not Path(path).is_file():
            raise BuildError(f"{setting}={path}: no such file (imagebuild genkey makes mkosi.key and mkosi.crt)")
    return Path(key), Path(certificate)


def sign(context: Context, source: Path, destination: Path) -> None:
    """Sign an EFI binary for Secure Boot (SecureBootSignTool=auto and sbsign both use sbsign)."""
    key, certificate = signing_files(context.config)
    sbsign = tool(context, "sbsign", package="sbsigntool")
    run_tool(context, [sbsign, "--key", key, "--cert", certificate, "--output", destination, source],
             what="sbsign")


def owner_guid(certificate_pem: bytes) -> uuid.UUID:
    """The signature owner GUID: derived from the certificate, so that rebuilds write the same files."""
    return uuid.uuid5(uuid.NAMESPACE_OID, certificate_pem.hex())


def signature_list(certificate_der: bytes, owner: uuid.UUID) -> bytes:
    """An EFI_SIGNATURE_LIST holding one X.509 certificate (UEFI spec 32.4.1)."""
    entry = owner.bytes_le + certificate_der
    header_size = 0
    return (EFI_CERT_X509_GUID.bytes_le
            + struct.pack("<III", 28 + len(entry), header_size, len(entry))
            + entry)


def efi_time(when: datetime.datetime) -> bytes:
    """EFI_TIME in UTC, with the pad, nanosecond, time zone and daylight fields zero as the spec demands."""
    when = when.astimezone(datetime.UTC)
    return struct.pack("<HBBBBBBIhBB", when.year, when.month, when.day, when.hour, when.minute, when.second,
                       0, 0, 0, 0, 0)


def _der_length(data: bytes, offset: int) -> tuple[int, int]:
    """(length, offset of the contents) of the DER element whose length octets start at offset."""
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    count = first & 0x7F
    return int.from_bytes(data[offset + 1:offset + 1 + count], "big"), offset + 1 + count


def signed_data_of(content_info: bytes) -> bytes:
    """The SignedData inside a PKCS#7 ContentInfo: what EFI_VARIABLE_AUTHENTICATION_2 carries."""
    _, inner = _der_length(content_info, 1)            # ContentInfo SEQUENCE
    oid_length, oid_start = _der_length(content_info, inner + 1)
    explicit = oid_start + oid_length                  # [0] EXPLICIT
    length, start = _der_length(content_info, explicit + 1)
    return content_info[start:start + length]


def authenticated_variable(name: str, payload: bytes, key: PrivateKeyTypes, certificate: x509.Certificate,
                           when: datetime.datetime) -> bytes:
    """An EFI_VARIABLE_AUTHENTICATION_2 (time-based) write of `payload` to Secure Boot variable `name`,
    signed with `key`: the contents of a .auth file that SetVariable() takes as is (UEFI spec 8.2.2)."""
    guid = IMAGE_SECURITY_DATABASE_GUID if name in ("db", "dbx") else EFI_GLOBAL_VARIABLE_GUID
    timestamp = efi_time(when)
    signed = name.encode("utf-16-le") + guid.bytes_le + struct.pack("<I", AUTH_ATTRIBUTES) + timestamp + payload
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BuildError("SecureBootKey=: Secure Boot needs an RSA key (imagebuild genkey makes one)")
    pkcs7_der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(signed)
        .add_signer(certificate, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary,
                                           pkcs7.PKCS7Options.NoAttributes])
    )
    cert_data = signed_data_of(pkcs7_der)
    win_certificate = struct.pack("<IHH", 4 + 2 + 2 + 16 + len(cert_data), 0x0200, WIN_CERT_TYPE_EFI_GUID)
    return timestamp + win_certificate + EFI_CERT_TYPE_PKCS7_GUID.bytes_le + cert_data + payload


def write_enrollment_files(context: Context, directory: Path) -> list[Path]:
    """{PK,KEK,db}.auth in `directory` (the ESP's loader/keys/auto), each holding our certificate."""
    key_path, certificate_path = signing_files(context.config)
    pem = certificate_path.read_bytes()
    try:
        certificate = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise BuildError(f"SecureBootKey=/SecureBootCertificate=: cannot load them: {e}") from None
    payload = signature_list(certificate.public_bytes(serialization.Encoding.DER), owner_guid(pem))
    epoch = context.config.source_date_epoch
    when = (datetime.datetime.fromtimestamp(epoch, datetime.UTC) if epoch is not None
            else datetime.datetime.now(datetime.UTC))
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for variable in ENROLLED_VARIABLES:
        target = directory / f"{variable}.auth"
        target.write_bytes(authenticated_variable(variable, payload, key, certificate, when))
        written.append(target)
    return written
