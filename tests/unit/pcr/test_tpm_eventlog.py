"""The firmware event log parser and PCR replay, on logs built in the test; the userspace log reader."""

from __future__ import annotations

import hashlib

import pytest

from imagebuild.boot.pcr import BOOTED_PHASES, predict_pcr11_from_sections
from imagebuild.boot.tpm_eventlog import EventLogError, parse_event_log, replay, replay_log
from imagebuild.boot.tpm_measure_log import parse_measure_log
from tests.unit.pcr import fake_eventlog as fake

SECTIONS = {".linux": b"KERNEL", ".osrel": b"ID=debian\n", ".cmdline": b"console=ttyS0"}


def firmware_log() -> bytes:
    return b"".join([
        fake.spec_id_event(),
        fake.no_action(b"StartupLocality\0\x03"),
        fake.event(0, 0x8, fake.utf16z("EDK II")),
        fake.event(7, 0x80000001, fake.efi_variable("SecureBoot", b"\x01")),
        fake.event(5, 0x6, fake.tagged(0xF5BC582A, "loader.conf"), measured=b"timeout 0\n"),
        fake.event(4, 0x80000007, b"Calling EFI Application from Boot Option"),
        fake.event(4, 0x80000003, fake.image_load("\\EFI\\BOOT\\BOOTX64.EFI"), measured=b"pe-hash"),
        fake.event(7, 0x4, bytes(4)),
        fake.stub_events(SECTIONS),
    ])


def test_events_and_their_descriptions() -> None:
    log = parse_event_log(firmware_log() + bytes(64))  # firmware may pad the log with zeros
    assert dict(log.algorithms) == {"sha1": 20, "sha256": 32}
    assert log.startup_locality == 3
    assert [(e.pcr, e.type_name, e.description) for e in log.events] == [
        (0, "EV_NO_ACTION", None),
        (0, "EV_S_CRTM_VERSION", "EDK II"),
        (7, "EV_EFI_VARIABLE_DRIVER_CONFIG", "SecureBoot (8be4df61-93ca-11d2-aa0d-00e098032b8c)"),
        (5, "EV_EVENT_TAG", "systemd-boot: loader.conf: loader.conf"),
        (4, "EV_EFI_ACTION", "Calling EFI Application from Boot Option"),
        (4, "EV_EFI_BOOT_SERVICES_APPLICATION", "\\EFI\\BOOT\\BOOTX64.EFI"),
        (7, "EV_SEPARATOR", "separator 0x0"),
        *[(11, "EV_IPL", name) for name in SECTIONS for _ in range(2)],
    ]
    assert log.events[3].tag == 0xF5BC582A
    assert log.events[-1].digests["sha256"] == hashlib.sha256(b"console=ttyS0").digest()
    assert len(log.for_pcr(11)) == 6 and not log.for_pcr(1)


def test_replay_by_hand() -> None:
    log = parse_event_log(firmware_log())
    values = replay_log(log, "sha256")
    # PCR 0 starts with the startup locality in its last byte; EV_NO_ACTION extends nothing.
    pcr0 = hashlib.sha256(bytes(31) + b"\x03" + hashlib.sha256(fake.utf16z("EDK II")).digest()).digest()
    assert values[0] == pcr0
    pcr5 = hashlib.sha256(bytes(32) + hashlib.sha256(b"timeout 0\n").digest()).digest()
    assert values[5] == pcr5
    assert set(values) == {0, 4, 5, 7, 11}
    assert replay(log.events, "sha1")[11] == predict_pcr11_from_sections(SECTIONS, phases=[]).value("sha1")


def test_firmware_and_userspace_logs_replay_to_the_prediction() -> None:
    firmware = parse_event_log(firmware_log())
    userspace = parse_measure_log(fake.measure_log([(11, p) for p in BOOTED_PHASES] + [(15, "machine-id:00")]))
    assert [(e.pcr, e.description, e.source) for e in userspace][:2] == [
        (11, "enter-initrd", "userspace"), (11, "leave-initrd", "userspace")]
    values = replay([*firmware.events, *userspace], "sha256", firmware.startup_locality)
    assert values[11] == predict_pcr11_from_sections(SECTIONS).value("sha256")
    assert values[15] == hashlib.sha256(bytes(32) + hashlib.sha256(b"machine-id:00").digest()).digest()


def test_malformed_logs() -> None:
    with pytest.raises(EventLogError, match="not a crypto-agile"):
        parse_event_log(fake.event(0, 0x8, b"x"))
    with pytest.raises(EventLogError, match="truncated at byte"):
        parse_event_log(firmware_log()[:-3])
    with pytest.raises(EventLogError, match="algorithm 0xc is not in its Spec ID header"):
        parse_event_log(fake.spec_id_event() + fake.event(0, 0x8, b"x").replace(b"\x0b\x00", b"\x0c\x00", 1))
    with pytest.raises(EventLogError, match="has no sha384 digest"):
        replay_log(parse_event_log(firmware_log()), "sha384")
    with pytest.raises(EventLogError, match="record 2: not JSON"):
        parse_measure_log("\x1e{\"pcr\": 11}\n\x1e{oops\n")
    with pytest.raises(EventLogError, match="record 1: a digest is not"):
        parse_measure_log("\x1e{\"pcr\": 11, \"digests\": [{\"hashAlg\": \"sha256\", \"digest\": \"zz\"}]}\n")
