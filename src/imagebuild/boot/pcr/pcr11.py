"""PCR 11 as systemd-stub and systemd-pcrphase will measure it, predicted from a UKI file.

The facts (systemd 257, src/fundamental/uki.h, systemd-measure(1), docs/TPM2_PCR_MEASUREMENTS.md):
- PCR 11 starts as all zeros. For each UKI section present, in the canonical order below, systemd-stub
  extends it twice: with the hash of the section name including its NUL byte, then with the hash of
  the section's VirtualSize bytes. .pcrsig is never measured (it signs the result); empty sections
  are skipped.
- Userspace then extends it with the hash of each boot phase word (no NUL): systemd-pcrphase-initrd
  measures "enter-initrd" and, when leaving the initrd, "leave-initrd"; systemd-pcrphase-sysinit
  "sysinit"; systemd-pcrphase "ready" (and "shutdown", "final" on the way down). All these units have
  ConditionSecurity=measured-uki, and the initrd ones only exist in initrds that carry systemd.
- A booted system (what `systemd-analyze pcrs 11` shows after boot) is at enter-initrd:leave-initrd:
  sysinit:ready, the last of systemd-measure's default phase paths.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imagebuild.boot.pcr.pe import PeError, read_pe, section_bytes
from imagebuild.errors import ImageBuildError

PCR_KERNEL_BOOT = 11

# The canonical measurement order, less .pcrsig (unified_sections[] of systemd 257 with
# unified_section_measure()).
MEASURED_SECTIONS = (
    ".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey",
)
# Sections whose measurement depends on the firmware or the chosen profile (multi-profile UKIs,
# devicetree auto-selection by hardware IDs): not predictable from the file alone.
UNPREDICTABLE_SECTIONS = (".profile", ".dtbauto", ".hwids")
# Shown in mismatch explanations: small text sections whose content helps a reader.
TEXT_SECTIONS = (".osrel", ".cmdline", ".uname")

BANKS = ("sha1", "sha256", "sha384", "sha512")
# The phases measured until a system booted from a UKI with a systemd initrd is up.
BOOTED_PHASES = ("enter-initrd", "leave-initrd", "sysinit", "ready")
# Every phase systemd 257's units measure, in order.
ALL_PHASES = (*BOOTED_PHASES, "shutdown", "final")


class PcrPredictionError(ImageBuildError):
    """The PCR value of this file cannot be predicted."""


def _check_bank(bank: str) -> str:
    if bank not in BANKS:
        raise PcrPredictionError(f"unknown PCR bank {bank!r} (known: {', '.join(BANKS)})")
    return bank


def digest(bank: str, data: bytes) -> bytes:
    return hashlib.new(_check_bank(bank), data).digest()


def extend(bank: str, value: bytes, measured_digest: bytes) -> bytes:
    """The TPM's PCR extend: new = H(old || digest)."""
    return hashlib.new(_check_bank(bank), value + measured_digest).digest()


def zero_pcr(bank: str) -> bytes:
    return bytes(hashlib.new(_check_bank(bank)).digest_size)


@dataclass(frozen=True)
class Measurement:
    """One extend of PCR 11: what was measured, and its digest in every bank."""

    kind: str  # "section-name", "section-content" or "phase"
    name: str  # the section (".linux") or the phase word ("sysinit")
    digests: Mapping[str, bytes]
    preview: str | None = None  # the text of small text sections, for explanations

    @property
    def label(self) -> str:
        if self.kind == "phase":
            return f"phase {self.name!r}"
        return f"{self.name} {'name' if self.kind == 'section-name' else 'content'}"


def _measure(kind: str, name: str, data: bytes, banks: Iterable[str], preview: str | None = None) -> Measurement:
    return Measurement(kind=kind, name=name, digests={b: digest(b, data) for b in banks}, preview=preview)


def section_measurements(sections: Mapping[str, bytes], banks: Sequence[str] = BANKS) -> list[Measurement]:
    """systemd-stub's PCR 11 events for these section contents (name -> bytes), in the stub's order."""
    measurements = []
    for name in MEASURED_SECTIONS:
        content = sections.get(name)
        if not content:
            continue
        preview = content.decode(errors="replace").strip() if name in TEXT_SECTIONS else None
        measurements.append(_measure("section-name", name, name.encode() + b"\0", banks))
        measurements.append(_measure("section-content", name, content, banks, preview))
    return measurements


def phase_measurements(phases: Iterable[str], banks: Sequence[str] = BANKS) -> list[Measurement]:
    """systemd-pcrextend's events for a phase path (words, or "a:b:c" strings as systemd-measure takes)."""
    words = [word for phase in phases for word in phase.split(":") if word]
    return [_measure("phase", word, word.encode(), banks) for word in words]


def uki_sections(path: Path) -> dict[str, bytes]:
    """The measured sections of a UKI file as the stub sees them in memory."""
    try:
        data, image = read_pe(path)
    except PeError as e:
        raise PcrPredictionError(str(e)) from None
    names = [s.name for s in image.sections]
    unpredictable = [n for n in UNPREDICTABLE_SECTIONS if n in names]
    if unpredictable:
        raise PcrPredictionError(
            f"{path}: has {', '.join(unpredictable)} sections; PCR 11 of multi-profile or devicetree-auto UKIs "
            "depends on the profile or hardware chosen at boot and is not predicted here"
        )
    if ".linux" not in names:
        raise PcrPredictionError(f"{path}: not a unified kernel image (no .linux section)")
    sections: dict[str, bytes] = {}
    for section in image.sections:
        # The stub takes the first section of a name.
        if section.name in MEASURED_SECTIONS and section.name not in sections:
            sections[section.name] = section_bytes(data, section, str(path))
    return sections


@dataclass(frozen=True)
class Pcr11Prediction:
    """The predicted PCR 11 events and values of one UKI after a phase path."""

    source: Path | None
    measurements: tuple[Measurement, ...]
    banks: tuple[str, ...] = field(default=BANKS)

    def value(self, bank: str = "sha256") -> bytes:
        if bank not in self.banks:
            raise PcrPredictionError(f"PCR bank {bank!r} was not predicted (predicted: {', '.join(self.banks)})")
        value = zero_pcr(bank)
        for measurement in self.measurements:
            value = extend(bank, value, measurement.digests[bank])
        return value

    def hex(self, bank: str = "sha256") -> str:
        return self.value(bank).hex()

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.measurements if m.kind == "phase")


def predict_pcr11_from_sections(
    sections: Mapping[str, bytes], phases: Sequence[str] = BOOTED_PHASES, banks: Sequence[str] = BANKS,
    source: Path | None = None,
) -> Pcr11Prediction:
    for bank in banks:
        _check_bank(bank)
    measurements = section_measurements(sections, banks) + phase_measurements(phases, banks)
    return Pcr11Prediction(source=source, measurements=tuple(measurements), banks=tuple(banks))


def predict_pcr11(uki: Path, phases: Sequence[str] = BOOTED_PHASES, banks: Sequence[str] = BANKS) -> Pcr11Prediction:
    """PCR 11 of a machine booted from this UKI, after `phases` (default: fully booted)."""
    return predict_pcr11_from_sections(uki_sections(uki), phases, banks, source=uki)


def expected_pcrs(uki: Path, bank: str = "sha256", phases: Sequence[str] = BOOTED_PHASES) -> dict[int, str]:
    """{PCR index: lowercase hex} of the PCRs predictable from the UKI alone (today: 11)."""
    return {PCR_KERNEL_BOOT: predict_pcr11(uki, phases, (bank,)).hex(bank)}
