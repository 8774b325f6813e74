"""A readable account of why a measured PCR 11 is not the predicted one: which section or phase differs.

The measured side is the PCR 11 events of the firmware log (systemd-stub's EV_IPL records, each
described by its section name, two per section: name then content) followed by those of systemd's
tpm2-measure.log (the phase words). Both sides are put in the same (kind, name) terms and aligned in
order, so a changed .cmdline shows as one differing entry and a phase that never ran as a missing one.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from imagebuild.boot.pcr.pcr11 import PCR_KERNEL_BOOT, Measurement, Pcr11Prediction, digest, extend, zero_pcr
from imagebuild.boot.tpm_eventlog import Event

Key = tuple[str, str]


def measured_key(event: Event, bank: str) -> Key:
    """(kind, name) of a measured PCR 11 event in the prediction's terms."""
    name = event.description or ""
    if event.source == "userspace":
        return ("phase", name)
    if name.startswith("."):
        # The stub describes both records by the section name; the name record hashes "name\0".
        if event.digests.get(bank) == digest(bank, name.encode() + b"\0"):
            return ("section-name", name)
        return ("section-content", name)
    return ("other", f"{event.type_name} {name!r}" if name else event.type_name)


def _label(key: Key) -> str:
    kind, name = key
    return Measurement(kind=kind, name=name, digests={}).label if kind != "other" else name


def _short(value: bytes | None) -> str:
    return value.hex()[:16] + "…" if value else "(no digest in this bank)"


def _replay(digests: Sequence[bytes | None], bank: str) -> bytes:
    value = zero_pcr(bank)
    for d in digests:
        if d is not None:
            value = extend(bank, value, d)
    return value


def explain_pcr11_mismatch(
    prediction: Pcr11Prediction, measured: Sequence[Event], bank: str = "sha256", actual: bytes | None = None,
) -> list[str]:
    """Lines saying where the measured PCR 11 events depart from the predicted ones.

    `measured`: the firmware log's events, then the userspace log's (others than PCR 11 are ignored);
    `actual`: the PCR value read from the TPM, if known, to tell an incomplete log from a different boot.
    """
    events = [e for e in measured if e.pcr == PCR_KERNEL_BOOT and e.extends]
    predicted_keys: list[Key] = [(m.kind, m.name) for m in prediction.measurements]
    measured_keys = [measured_key(e, bank) for e in events]
    replayed = _replay([e.digests.get(bank) for e in events], bank)
    lines = [f"PCR {PCR_KERNEL_BOOT} ({bank}): predicted {prediction.hex(bank)}",
             f"  the event logs replay to {replayed.hex()}"]
    if actual is not None:
        lines.append(f"  the TPM reads          {actual.hex()}")
        if actual != replayed:
            lines.append("  The logs do not account for the TPM's value: a measurement was made without being logged "
                         "(or a log is incomplete), so the entries below may not tell the whole story.")
    differences: list[str] = []
    matcher = difflib.SequenceMatcher(a=predicted_keys, b=measured_keys, autojunk=False)
    for op, p_start, p_end, m_start, m_end in matcher.get_opcodes():
        if op == "equal":
            for p, m in zip(range(p_start, p_end), range(m_start, m_end), strict=True):
                expected, got = prediction.measurements[p], events[m].digests.get(bank)
                if expected.digests[bank] == got:
                    continue
                text = f"{expected.label} DIFFERS: predicted {_short(expected.digests[bank])}, measured {_short(got)}"
                if expected.preview is not None:
                    text += f" (the image's {expected.name} is {expected.preview!r})"
                differences.append(text)
            continue
        for p in range(p_start, p_end):
            differences.append(f"{_label(predicted_keys[p])} MISSING: predicted, but not measured here")
        for m in range(m_start, m_end):
            differences.append(f"{_label(measured_keys[m])} UNEXPECTED: measured, but not predicted "
                               f"(digest {_short(events[m].digests.get(bank))})")
    if not differences:
        if prediction.value(bank) == replayed:
            lines.append("  Every measured event is the predicted one.")
        else:
            lines.append("  The same events were measured, yet the values differ: the log lacks digests of this bank.")
        return lines
    lines.append(f"  {len(differences)} difference(s), the first is the one that matters most:")
    lines += [f"  - {text}" for text in differences]
    sections_differ = any(not text.startswith("phase ") for text in differences)
    if not sections_differ:
        measured_phases = [name for kind, name in measured_keys if kind == "phase"]
        lines.append(f"  The UKI's sections were measured as predicted; only the boot phases differ (measured: "
                     f"{', '.join(measured_phases) or 'none'}; predicted: {', '.join(prediction.phases) or 'none'}).")
    return lines
