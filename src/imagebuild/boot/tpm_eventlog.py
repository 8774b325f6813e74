"""The firmware's TPM 2.0 measured-boot event log, and replaying events into PCR values.

The format (TCG PC Client Platform Firmware Profile, "crypto agile" log, as Linux exposes it in
/sys/kernel/security/tpm0/binary_bios_measurements): one TCG_PCClientPCREvent in the old SHA-1 layout
holding the "Spec ID Event03" header, which lists the digest algorithms and their sizes; then
TCG_PCR_EVENT2 records: pcrIndex u32, eventType u32, a count and that many (algorithm id u16, digest)
pairs, eventSize u32 and the event data. All little-endian.

Event data is decoded where it is text we know: systemd-stub's EV_IPL records carry the PE section name
(or kernel command line) in UTF-16, EV_EVENT_TAG records a tag id and, for systemd's and the Linux EFI
stub's tags, a UTF-16 description; EV_EFI_ACTION/EV_ACTION ASCII; EFI variables their name; loaded EFI
applications the file path of their device path.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from imagebuild.errors import ImageBuildError

EVENT_LOG_PATH = "/sys/kernel/security/tpm0/binary_bios_measurements"

ALGORITHMS = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512", 0x0012: "sm3_256"}

EV_NO_ACTION, EV_SEPARATOR, EV_ACTION, EV_EVENT_TAG, EV_S_CRTM_VERSION, EV_IPL = 0x3, 0x4, 0x5, 0x6, 0x8, 0xD
EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_BOOT = 0x80000001, 0x80000002
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_ACTION, EV_EFI_VARIABLE_BOOT2, EV_EFI_VARIABLE_AUTHORITY = 0x80000007, 0x8000000C, 0x800000E0

EVENT_TYPES = {
    0x0: "EV_PREBOOT_CERT", 0x1: "EV_POST_CODE", 0x2: "EV_UNUSED", EV_NO_ACTION: "EV_NO_ACTION",
    EV_SEPARATOR: "EV_SEPARATOR", EV_ACTION: "EV_ACTION", EV_EVENT_TAG: "EV_EVENT_TAG",
    0x7: "EV_S_CRTM_CONTENTS", EV_S_CRTM_VERSION: "EV_S_CRTM_VERSION", 0x9: "EV_CPU_MICROCODE",
    0xA: "EV_PLATFORM_CONFIG_FLAGS", 0xB: "EV_TABLE_OF_DEVICES", 0xC: "EV_COMPACT_HASH", EV_IPL: "EV_IPL",
    0xE: "EV_IPL_PARTITION_DATA", 0xF: "EV_NONHOST_CODE", 0x10: "EV_NONHOST_CONFIG", 0x11: "EV_NONHOST_INFO",
    0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
    EV_EFI_VARIABLE_DRIVER_CONFIG: "EV_EFI_VARIABLE_DRIVER_CONFIG", EV_EFI_VARIABLE_BOOT: "EV_EFI_VARIABLE_BOOT",
    EV_EFI_BOOT_SERVICES_APPLICATION: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER", 0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT", EV_EFI_ACTION: "EV_EFI_ACTION", 0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES", 0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2", EV_EFI_VARIABLE_BOOT2: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT", EV_EFI_VARIABLE_AUTHORITY: "EV_EFI_VARIABLE_AUTHORITY",
    0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB", 0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}

# EV_EVENT_TAG ids: systemd's (src/fundamental/tpm2-pcr.h) and the Linux EFI stub's (efistub.h).
EVENT_TAGS = {
    0xF5BC582A: "systemd-boot: loader.conf", 0x6C46F751: "systemd-stub: devicetree addon",
    0x49DFFE0F: "systemd-stub: initrd addon", 0xDAC08E1A: "systemd-stub: ucode addon",
    0x13AED6DB: "systemd-stub: UKI profile", 0xD5CB7CBC: "smbios:type1", 0xE0D47BC8: "smbios:type2",
    0xC0B3BD23: "smbios:type11", 0x8F3B22EC: "Linux: initrd", 0x8F3B22ED: "Linux: kernel command line",
}

SPEC_ID_SIGNATURE = b"Spec ID Event03\0"
STARTUP_LOCALITY_SIGNATURE = b"StartupLocality\0"
DEVICE_PATH_MEDIA, DEVICE_PATH_FILE, DEVICE_PATH_END = 4, 4, 0x7F


class EventLogError(ImageBuildError):
    """The event log cannot be parsed."""


@dataclass(frozen=True)
class Event:
    """One measurement: which PCR, which kind, its digest per bank, and what it says it measured."""

    pcr: int
    event_type: int | None  # None for userspace (tpm2-measure.log) records
    digests: Mapping[str, bytes]
    data: bytes = b""
    description: str | None = None
    tag: int | None = None  # the EV_EVENT_TAG id
    source: str = "firmware"  # "firmware" or "userspace"

    @property
    def type_name(self) -> str:
        if self.event_type is None:
            return "userspace"
        return EVENT_TYPES.get(self.event_type, f"{self.event_type:#x}")

    @property
    def extends(self) -> bool:
        """EV_NO_ACTION records are information only: they extend no PCR."""
        return self.event_type != EV_NO_ACTION


@dataclass(frozen=True)
class EventLog:
    algorithms: Mapping[str, int]  # bank -> digest size, from the Spec ID header
    events: tuple[Event, ...]
    startup_locality: int = 0
    spec_header: Event | None = field(default=None, repr=False)

    def for_pcr(self, pcr: int) -> list[Event]:
        return [e for e in self.events if e.pcr == pcr and e.extends]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise EventLogError(f"TPM event log truncated at byte {self.offset} (reading {what})")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.take(2, what))[0])

    def at_end(self) -> bool:
        # Some firmware pads the log with zeros or 0xFF past its last event.
        rest = self.data[self.offset:]
        return not rest.strip(b"\0") or not rest.strip(b"\xff")


def utf16(data: bytes) -> str:
    return data.decode("utf-16-le", errors="replace").split("\0", 1)[0]


def _text(data: bytes) -> str:
    """EV_IPL data: UTF-16 from systemd-stub and systemd-boot, ASCII from others (GRUB)."""
    if len(data) >= 2 and len(data) % 2 == 0 and data[1::2].count(0) >= len(data) // 4:
        return utf16(data)
    return data.split(b"\0", 1)[0].decode(errors="replace")


def _device_path_file(path: bytes) -> str | None:
    """The file path nodes of an EFI device path, joined ("\\EFI\\Linux\\x.efi")."""
    parts, offset = [], 0
    while offset + 4 <= len(path):
        node_type, subtype, length = path[offset], path[offset + 1], struct.unpack_from("<H", path, offset + 2)[0]
        if length < 4 or node_type == DEVICE_PATH_END:
            break
        if node_type == DEVICE_PATH_MEDIA and subtype == DEVICE_PATH_FILE:
            parts.append(utf16(path[offset + 4:offset + length]))
        offset += length
    return "".join(parts) or None


def describe(event_type: int, data: bytes) -> tuple[str | None, int | None]:
    """(description, tag) of an event's data, where it is a kind we know."""
    try:
        if event_type == EV_IPL:
            return _text(data), None
        if event_type == EV_EVENT_TAG and len(data) >= 8:
            tag, size = struct.unpack_from("<II", data)
            text = utf16(data[8:8 + size]) if tag in EVENT_TAGS else None
            name = EVENT_TAGS.get(tag, f"tag {tag:#010x}")
            return (f"{name}: {text}" if text else name), tag
        if event_type in (EV_EFI_ACTION, EV_ACTION):
            return data.split(b"\0", 1)[0].decode(errors="replace"), None
        if event_type == EV_S_CRTM_VERSION:
            return utf16(data), None
        if event_type in (EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_BOOT, EV_EFI_VARIABLE_BOOT2,
                          EV_EFI_VARIABLE_AUTHORITY) and len(data) >= 32:
            guid = uuid.UUID(bytes_le=data[:16])
            name_length = struct.unpack_from("<Q", data, 16)[0]
            return f"{utf16(data[32:32 + 2 * name_length])} ({guid})", None
        if event_type == EV_EFI_BOOT_SERVICES_APPLICATION and len(data) >= 32:
            path_length = struct.unpack_from("<Q", data, 24)[0]
            return _device_path_file(data[32:32 + path_length]), None
        if event_type == EV_SEPARATOR and len(data) == 4:
            return f"separator {struct.unpack('<I', data)[0]:#x}", None
    except (struct.error, ValueError):
        pass
    return None, None


def _spec_header(reader: _Reader) -> tuple[Event, dict[int, int]]:
    not_agile = "not a crypto-agile TPM 2.0 event log (the first event is not \"Spec ID Event03\")"
    pcr, event_type = reader.u32("first event's PCR"), reader.u32("first event's type")
    if event_type != EV_NO_ACTION:
        raise EventLogError(not_agile)
    sha1 = reader.take(20, "first event's digest")
    data = reader.take(reader.u32("first event's size"), "Spec ID event")
    if not data.startswith(SPEC_ID_SIGNATURE):
        raise EventLogError(not_agile)
    spec = _Reader(data)
    spec.take(16 + 4 + 4, "Spec ID fields")  # signature, platformClass, version minor/major/errata, uintnSize
    sizes = {}
    for _ in range(spec.u32("number of algorithms")):
        algorithm = spec.u16("algorithm id")
        sizes[algorithm] = spec.u16("digest size")
    return Event(pcr=pcr, event_type=event_type, digests={"sha1": sha1}, data=data), sizes


def parse_event_log(data: bytes) -> EventLog:
    """Every event of a binary (crypto-agile) TPM 2.0 event log."""
    reader = _Reader(data)
    header, sizes = _spec_header(reader)
    events, locality = [], 0
    while not reader.at_end():
        pcr, event_type = reader.u32("PCR index"), reader.u32("event type")
        digests = {}
        for _ in range(reader.u32("digest count")):
            algorithm = reader.u16("digest algorithm")
            if algorithm not in sizes:
                raise EventLogError(f"TPM event log: digest algorithm {algorithm:#x} is not in its Spec ID header")
            digests[ALGORITHMS.get(algorithm, f"alg-{algorithm:#x}")] = reader.take(sizes[algorithm], "digest")
        event_data = reader.take(reader.u32("event size"), "event data")
        if event_type == EV_NO_ACTION and event_data.startswith(STARTUP_LOCALITY_SIGNATURE) and len(event_data) > 16:
            locality = event_data[16]
        description, tag = describe(event_type, event_data)
        events.append(Event(pcr=pcr, event_type=event_type, digests=digests, data=event_data,
                            description=description, tag=tag))
    algorithms = {ALGORITHMS.get(a, f"alg-{a:#x}"): size for a, size in sizes.items()}
    return EventLog(algorithms=algorithms, events=tuple(events), startup_locality=locality, spec_header=header)


def initial_value(pcr: int, bank: str, startup_locality: int = 0) -> bytes:
    """PCRs reset to zeros; PCR 0 carries the startup locality in its last byte; 17-22 (DRTM) are all ones."""
    size = hashlib.new(bank).digest_size
    if pcr == 0:
        return bytes(size - 1) + bytes([startup_locality])
    if 17 <= pcr <= 22:
        return b"\xff" * size
    return bytes(size)


def replay(events: Iterable[Event], bank: str = "sha256", startup_locality: int = 0) -> dict[int, bytes]:
    """The PCR values (of the PCRs the events touch) after extending them with the events in order."""
    values: dict[int, bytes] = {}
    for event in events:
        if not event.extends:
            continue
        if bank not in event.digests:
            raise EventLogError(f"event {event.type_name} of PCR {event.pcr} has no {bank} digest")
        value = values.get(event.pcr, initial_value(event.pcr, bank, startup_locality))
        values[event.pcr] = hashlib.new(bank, value + event.digests[bank]).digest()
    return values


def replay_log(log: EventLog, bank: str = "sha256") -> dict[int, bytes]:
    return replay(log.events, bank, log.startup_locality)
