"""Crypto-agile TPM 2.0 event logs and tpm2-measure.log texts built field by field for the tests."""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from collections.abc import Sequence

ALGORITHM_IDS = {"sha1": 0x0004, "sha256": 0x000B}
BANKS = ("sha1", "sha256")


def spec_id_event(banks: Sequence[str] = BANKS) -> bytes:
    body = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(banks))
    for bank in banks:
        body += struct.pack("<HH", ALGORITHM_IDS[bank], hashlib.new(bank).digest_size)
    body += b"\0"  # vendorInfoSize
    return struct.pack("<II", 0, 3) + bytes(20) + struct.pack("<I", len(body)) + body


def event(pcr: int, event_type: int, data: bytes, measured: bytes | None = None,
          banks: Sequence[str] = BANKS) -> bytes:
    """A TCG_PCR_EVENT2 whose digests hash `measured` (default: the event data itself)."""
    content = data if measured is None else measured
    record = struct.pack("<III", pcr, event_type, len(banks))
    for bank in banks:
        record += struct.pack("<H", ALGORITHM_IDS[bank]) + hashlib.new(bank, content).digest()
    return record + struct.pack("<I", len(data)) + data


def no_action(data: bytes, banks: Sequence[str] = BANKS) -> bytes:
    record = struct.pack("<III", 0, 3, len(banks))
    for bank in banks:
        record += struct.pack("<H", ALGORITHM_IDS[bank]) + bytes(hashlib.new(bank).digest_size)
    return record + struct.pack("<I", len(data)) + data


def utf16z(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def efi_variable(name: str, value: bytes, guid: str = "8be4df61-93ca-11d2-aa0d-00e098032b8c") -> bytes:
    return uuid.UUID(guid).bytes_le + struct.pack("<QQ", len(name), len(value)) + name.encode("utf-16-le") + value


def image_load(path: str) -> bytes:
    file_node = utf16z(path)
    device_path = struct.pack("<BBH", 4, 4, 4 + len(file_node)) + file_node + struct.pack("<BBH", 0x7F, 0xFF, 4)
    return struct.pack("<QQQQ", 0x1000, 0x2000, 0, len(device_path)) + device_path


def tagged(tag: int, text: str) -> bytes:
    description = utf16z(text)
    return struct.pack("<II", tag, len(description)) + description


def stub_events(sections: dict[str, bytes]) -> bytes:
    """systemd-stub's PCR 11 records (EV_IPL, described by the section name in UTF-16)."""
    log = b""
    for name, content in sections.items():
        log += event(11, 0xD, utf16z(name), measured=name.encode() + b"\0")
        log += event(11, 0xD, utf16z(name), measured=content)
    return log


def measure_log(records: Sequence[tuple[int, str]], banks: Sequence[str] = BANKS) -> str:
    """A tpm2-measure.log as systemd-pcrextend writes it: RS, JSON, newline per record."""
    text = ""
    for pcr, word in records:
        digests = [{"hashAlg": bank, "digest": hashlib.new(bank, word.encode()).hexdigest()} for bank in banks]
        record = {"pcr": pcr, "digests": digests, "content_type": "systemd",
                  "content": {"string": word, "bootId": "0" * 32, "timestamp": 1, "eventType": "phase"}}
        text += "\x1e" + json.dumps(record) + "\n"
    return text
