"""PolicyPCR digests of predicted values, and reading what a UKI's .pcrsig signs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagebuild.boot.pcr import BOOTED_PHASES, PcrPredictionError, predict_pcr11, predict_pcr11_from_sections
from imagebuild.boot.pcr.policy import policy_pcr_digest, signed_policies, unsigned_phase_paths
from tests.unit.pcr.fake_pe import fake_pe
from tests.unit.pcr.test_pcr11 import SYSTEMD_MEASURE_SECTIONS

# "pol" of `systemd-measure sign --bank=sha256 --phase=enter-initrd:leave-initrd:sysinit:ready` (257) on the
# sections of SYSTEMD_MEASURE_SECTIONS.
SIGNED_POLICY = "35837c9183e2c8ed18d502cdd411bb1c1af02cf74811f90865fb88f7132c43bc"


def test_policy_digest_of_systemd_measure_sign() -> None:
    value = predict_pcr11_from_sections(SYSTEMD_MEASURE_SECTIONS, BOOTED_PHASES).value("sha256")
    assert policy_pcr_digest({11: value}).hex() == SIGNED_POLICY
    assert policy_pcr_digest({11: bytes(32)}).hex() != SIGNED_POLICY
    with pytest.raises(PcrPredictionError, match="out of range"):
        policy_pcr_digest({24: bytes(32)})


def test_the_signed_phase_paths_of_a_uki(tmp_path: Path) -> None:
    sections = [(".osrel", b"ID=debian\n"), (".linux", b"KERNEL")]
    unsigned = tmp_path / "unsigned.efi"
    unsigned.write_bytes(fake_pe(sections))
    booted = policy_pcr_digest({11: predict_pcr11(unsigned, BOOTED_PHASES).value("sha256")})
    signature = {"sha256": [{"pcrs": [11], "pkfp": "00", "pol": booted.hex(), "sig": "AA=="}]}
    signed = tmp_path / "signed.efi"
    signed.write_bytes(fake_pe([*sections, (".pcrsig", json.dumps(signature).encode())]))
    assert signed_policies(unsigned) == set() and signed_policies(signed) == {booted}
    paths = [BOOTED_PHASES[:1], BOOTED_PHASES]
    assert unsigned_phase_paths(signed, paths) == ["enter-initrd"]
    assert unsigned_phase_paths(unsigned, paths) == ["enter-initrd", "enter-initrd:leave-initrd:sysinit:ready"]
    broken = tmp_path / "broken.efi"
    broken.write_bytes(fake_pe([*sections, (".pcrsig", b"{not json")]))
    with pytest.raises(PcrPredictionError, match="not systemd-measure's JSON"):
        signed_policies(broken)
