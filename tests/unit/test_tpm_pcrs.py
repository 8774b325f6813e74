"""machine.pcrs() parsing, PcrValue, the PCR assertion report (checks/pcr.py) and finding the ESP of a disk."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest

from imagebuild.boot.pcr import BOOTED_PHASES, predict_pcr11_from_sections
from imagebuild.boot.tpm_eventlog import parse_event_log, replay
from imagebuild.boot.tpm_measure_log import parse_measure_log
from imagebuild.boot.uki_in_image import ESP_TYPE, UkiNotFound, esp_offset
from pytest_mkosi.checks.pcr import report
from pytest_mkosi.machine.tpm import MeasuredBoot, PcrValue
from tests.unit.fake_machines import machine_answering
from tests.unit.pcr import fake_eventlog as fake

SECTIONS = {".linux": b"KERNEL", ".osrel": b"ID=debian\n", ".cmdline": b"console=ttyS0", ".uname": b"6.12\n"}


def boot_log(sections: dict[str, bytes]) -> MeasuredBoot:
    firmware = parse_event_log(fake.spec_id_event() + fake.stub_events(sections))
    phases = parse_measure_log(fake.measure_log([(11, p) for p in BOOTED_PHASES]))
    return MeasuredBoot(firmware, tuple(phases))


def test_pcrs_from_sysfs(tmp_path: Path) -> None:
    listing = "".join(f"{i} {'AB' * 32 if i == 11 else '00' * 32}\n" for i in range(24))
    machine = machine_answering(tmp_path, {r"pcr-sha256": (0, listing, "")})
    pcrs = machine.pcrs()
    assert sorted(pcrs) == list(range(24))
    assert pcrs[11] == "ab" * 32 and pcrs[11].source == "sysfs" and pcrs[11].pcr == 11 and pcrs[11].bank == "sha256"


def test_pcrs_from_tpm2_pcrread_when_sysfs_has_none(tmp_path: Path) -> None:
    def respond(line: str) -> tuple[int, str, str]:
        if "pcr-sha1" in line:
            return 1, "", "No such file or directory"
        if "tpm2_pcrread" in line:
            return 0, "  sha1:\n    0 : 0x" + "0A" * 20 + "\n    11: 0x" + "FF" * 20 + "\n", ""
        return 0, "", ""

    pcrs = machine_answering(tmp_path, respond).pcrs("sha1")
    assert pcrs == {0: "0a" * 20, 11: "ff" * 20} and pcrs[11].source == "tpm2_pcrread"


def test_a_machine_without_tpm_says_so(tmp_path: Path) -> None:
    machine = machine_answering(tmp_path, {r"pcr-sha256|tpm2_pcrread|test -e": (1, "", "no")})
    with pytest.raises(AssertionError, match="it has no TPM"):
        machine.pcrs()


def test_the_report_names_the_changed_command_line() -> None:
    prediction = predict_pcr11_from_sections(SECTIONS, banks=("sha256",))
    booted = boot_log({**SECTIONS, ".cmdline": b"console=ttyS0 debug"})
    actual = replay(booted.events)[11].hex()
    measured = PcrValue(actual, bank="sha256", pcr=11, source="sysfs", event_log=lambda: booted)
    predicted = PcrValue(prediction.hex(), bank="sha256", pcr=11, source="predicted", prediction=prediction)
    assert measured != predicted
    for lines in (report(measured, predicted), report(predicted, measured)):
        assert lines is not None
        assert lines[0] == f"PCR 11 (sha256) measured (sysfs) {actual} != predicted {prediction.hex()}"
        assert any(line.startswith("  - .cmdline content DIFFERS") for line in lines), lines
    same = PcrValue(prediction.hex(), bank="sha256", pcr=11, source="sysfs", event_log=lambda: booted)
    assert same == predicted and report(same, predicted) is None
    assert report(measured, prediction.hex()) is None


def gpt_image(path: Path, sector: int, esp_lba: int | None) -> None:
    entries = bytearray(128 * 4)
    if esp_lba is not None:
        entries[128:128 + 16] = ESP_TYPE.bytes_le
        entries[128 + 16:128 + 32] = uuid.uuid4().bytes_le
        struct.pack_into("<QQ", entries, 128 + 32, esp_lba, esp_lba + 100)
    header = bytearray(92)
    header[:8] = b"EFI PART"
    struct.pack_into("<QII", header, 72, 2, 4, 128)
    data = bytearray(sector * 2 + len(entries))
    data[sector:sector + 92] = header
    data[2 * sector:] = entries
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("sector", [512, 4096])
def test_the_esp_is_found_in_the_partition_table(tmp_path: Path, sector: int) -> None:
    gpt_image(tmp_path / "disk.raw", sector, esp_lba=2048)
    assert esp_offset(tmp_path / "disk.raw") == 2048 * sector


def test_a_disk_without_esp_or_gpt(tmp_path: Path) -> None:
    gpt_image(tmp_path / "noesp.raw", 512, esp_lba=None)
    with pytest.raises(UkiNotFound, match="no EFI System Partition"):
        esp_offset(tmp_path / "noesp.raw")
    (tmp_path / "zero.raw").write_bytes(bytes(8192))
    with pytest.raises(UkiNotFound, match="not a GPT disk image"):
        esp_offset(tmp_path / "zero.raw")
