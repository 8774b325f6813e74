"""Explanations of PCR 11 mismatches name the section or phase that differs."""

from __future__ import annotations

from imagebuild.boot.pcr import BOOTED_PHASES, predict_pcr11_from_sections
from imagebuild.boot.pcr.explain import explain_pcr11_mismatch
from imagebuild.boot.tpm_eventlog import Event, parse_event_log, replay
from imagebuild.boot.tpm_measure_log import parse_measure_log
from tests.unit.pcr import fake_eventlog as fake

SECTIONS = {".linux": b"KERNEL", ".osrel": b"ID=debian\n", ".cmdline": b"console=ttyS0", ".uname": b"6.12\n"}


def measured(sections: dict[str, bytes], phases: tuple[str, ...] = BOOTED_PHASES) -> list[Event]:
    firmware = parse_event_log(fake.spec_id_event() + fake.event(0, 0x8, b"fw") + fake.stub_events(sections))
    return [*firmware.events, *parse_measure_log(fake.measure_log([(11, p) for p in phases]))]


def test_a_matching_boot() -> None:
    prediction = predict_pcr11_from_sections(SECTIONS)
    events = measured(SECTIONS)
    lines = explain_pcr11_mismatch(prediction, events, actual=replay(events)[11])
    assert lines[0] == f"PCR 11 (sha256): predicted {prediction.hex()}"
    assert lines[-1] == "  Every measured event is the predicted one."


def test_a_changed_command_line_is_named() -> None:
    prediction = predict_pcr11_from_sections(SECTIONS)
    lines = explain_pcr11_mismatch(prediction, measured({**SECTIONS, ".cmdline": b"console=ttyS0 debug"}))
    differences = [line for line in lines if line.startswith("  - ")]
    assert len(differences) == 1, lines
    assert differences[0].startswith("  - .cmdline content DIFFERS: predicted ")
    assert differences[0].endswith("(the image's .cmdline is 'console=ttyS0')")


def test_missing_phase_and_extra_section() -> None:
    prediction = predict_pcr11_from_sections(SECTIONS)
    lines = explain_pcr11_mismatch(prediction, measured(SECTIONS, BOOTED_PHASES[:3]), bank="sha1")
    assert "  - phase 'ready' MISSING: predicted, but not measured here" in lines
    assert lines[-1] == ("  The UKI's sections were measured as predicted; only the boot phases differ (measured: "
                         "enter-initrd, leave-initrd, sysinit; predicted: enter-initrd, leave-initrd, sysinit, ready).")
    with_splash = {".linux": b"KERNEL", ".osrel": b"ID=debian\n", ".cmdline": b"console=ttyS0",
                   ".splash": b"BM", ".uname": b"6.12\n"}
    lines = explain_pcr11_mismatch(prediction, measured(with_splash))
    assert [line[4:line.index(" UNEXPECTED")] for line in lines if "UNEXPECTED" in line] == [
        ".splash name", ".splash content"]
    assert not any("DIFFERS" in line or "MISSING" in line for line in lines)


def test_a_log_that_does_not_account_for_the_tpm() -> None:
    prediction = predict_pcr11_from_sections(SECTIONS)
    lines = explain_pcr11_mismatch(prediction, measured(SECTIONS), actual=bytes(32))
    assert any(line.startswith("  The logs do not account for the TPM's value") for line in lines)
