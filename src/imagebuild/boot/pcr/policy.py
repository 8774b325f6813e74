"""The TPM2 PolicyPCR digest of predicted PCR values: what a UKI's .pcrsig signs ("pol" in its JSON).

TPM2_PolicyPCR extends a policy digest (zeros at the start) as
    H(old || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(values of the selected PCRs, in index order)),
all big-endian TPM marshalling, with the bank's hash. systemd-measure sign computes it for PCR 11 with
each phase path's value, so comparing it with our prediction ties the embedded signature to the image.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagebuild.boot.pcr.pcr11 import PCR_KERNEL_BOOT, PcrPredictionError, predict_pcr11
from imagebuild.boot.pcr.pe import PeError, read_pe, section_bytes

TPM_CC_POLICY_PCR = 0x0000017F
TPM_ALG_IDS = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}
PCR_SELECT_BYTES = 3  # PCRs 0-23


def pcr_selection(pcrs: list[int], bank: str) -> bytes:
    """A marshalled TPML_PCR_SELECTION with one bank."""
    bitmap = bytearray(PCR_SELECT_BYTES)
    for pcr in pcrs:
        bitmap[pcr // 8] |= 1 << (pcr % 8)
    return struct.pack(">IHB", 1, TPM_ALG_IDS[bank], PCR_SELECT_BYTES) + bytes(bitmap)


def policy_pcr_digest(values: Mapping[int, bytes], bank: str = "sha256") -> bytes:
    """The policy digest of a PolicyPCR on these PCR values (index -> value) of `bank`."""
    if bank not in TPM_ALG_IDS:
        raise PcrPredictionError(f"unknown PCR bank {bank!r} (known: {', '.join(TPM_ALG_IDS)})")
    pcrs = sorted(values)
    if any(not 0 <= pcr < 8 * PCR_SELECT_BYTES for pcr in pcrs):
        raise PcrPredictionError(f"PCR index out of range 0-23: {pcrs}")
    selected = hashlib.new(bank, b"".join(values[pcr] for pcr in pcrs)).digest()
    old = bytes(hashlib.new(bank).digest_size)
    return hashlib.new(bank, old + struct.pack(">I", TPM_CC_POLICY_PCR) + pcr_selection(pcrs, bank)
                       + selected).digest()


def signed_policies(uki: Path, bank: str = "sha256") -> set[bytes]:
    """The PCR 11 policy digests the UKI's .pcrsig section signs for `bank` (empty: no .pcrsig)."""
    try:
        data, image = read_pe(uki)
    except PeError as e:
        raise PcrPredictionError(str(e)) from None
    section = next((s for s in image.sections if s.name == ".pcrsig"), None)
    if section is None:
        return set()
    try:
        signature = json.loads(section_bytes(data, section, str(uki)).rstrip(b"\0"))
        return {bytes.fromhex(entry["pol"]) for entry in signature.get(bank, []) if entry.get("pcrs") == [11]}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise PcrPredictionError(f"{uki}: the .pcrsig section is not systemd-measure's JSON") from None


def unsigned_phase_paths(uki: Path, phase_paths: Sequence[Sequence[str]], bank: str = "sha256") -> list[str]:
    """The phase paths ("a:b") whose predicted PCR 11 the UKI's embedded signature does not cover."""
    signed = signed_policies(uki, bank)
    missing = []
    for phases in phase_paths:
        value = predict_pcr11(uki, phases, (bank,)).value(bank)
        if policy_pcr_digest({PCR_KERNEL_BOOT: value}, bank) not in signed:
            missing.append(":".join(phases))
    return missing
