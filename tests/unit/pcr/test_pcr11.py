"""PCR 11 prediction: the extend chain by hand, vectors from systemd-measure 257, and UKI section reading."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagebuild.boot.pcr import (
    BOOTED_PHASES,
    PcrPredictionError,
    expected_pcrs,
    predict_pcr11,
    predict_pcr11_from_sections,
)
from imagebuild.boot.pcr.pe import PeError, parse_pe, section_bytes
from tests.unit.pcr.fake_pe import fake_pe


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_the_extend_chain_by_hand() -> None:
    sections = {".cmdline": b"quiet", ".linux": b"KERNEL", ".sbat": b""}
    value = bytes(32)
    # The stub's order puts .linux before .cmdline whatever the dict's order; the empty .sbat is skipped.
    for data in (b".linux\0", b"KERNEL", b".cmdline\0", b"quiet", b"enter-initrd"):
        value = sha256(value + sha256(data))
    prediction = predict_pcr11_from_sections(sections, phases=["enter-initrd"])
    assert prediction.value("sha256") == value
    assert [m.label for m in prediction.measurements] == [
        ".linux name", ".linux content", ".cmdline name", ".cmdline content", "phase 'enter-initrd'"]


# Measured with the tools tree's systemd-measure 257: `systemd-measure calculate --linux=linux
# --osrel=osrel --cmdline=cmdline --initrd=initrd --uname=uname` on files with these contents.
SYSTEMD_MEASURE_SECTIONS = {
    ".linux": b"not a kernel", ".osrel": b"ID=debian\n", ".cmdline": b"console=ttyS0", ".initrd": b"initrd-bytes",
    ".uname": b"6.12.0\n",
}
SYSTEMD_MEASURE_VALUES = {
    ("enter-initrd",): {
        "sha1": "71682f0a10882dd7c7e5e5728aeb8162b59abeae",
        "sha256": "dfeb4afe161447b8e285fe47da2fd48d07547067bba1cf762715f190edd377df",
    },
    BOOTED_PHASES: {
        "sha1": "b98fc83c1648447a7a664bc37a74bbe5ed08a142",
        "sha256": "cc2f2e50984eb5d0a42b5b9c938b145dbf97e937c83b1c27c27cf822b579909a",
        "sha384": "ca00323c44009e2091efd121637a7aa1f49bec1f2b45bfde32df10f75c7caca9"
                  "cb26b4bda2d7299ba955e7b81c021c6a",
    },
}


@pytest.mark.parametrize("phases", list(SYSTEMD_MEASURE_VALUES))
def test_vectors_of_systemd_measure(phases: tuple[str, ...]) -> None:
    prediction = predict_pcr11_from_sections(SYSTEMD_MEASURE_SECTIONS, phases)
    for bank, expected in SYSTEMD_MEASURE_VALUES[phases].items():
        assert prediction.hex(bank) == expected, bank


def test_phase_paths_in_systemd_measure_form() -> None:
    words = predict_pcr11_from_sections(SYSTEMD_MEASURE_SECTIONS, BOOTED_PHASES)
    path = predict_pcr11_from_sections(SYSTEMD_MEASURE_SECTIONS, ["enter-initrd:leave-initrd:", ":sysinit:ready"])
    assert words.hex() == path.hex() and path.phases == BOOTED_PHASES


def _uki(tmp_path: Path, sections: list[tuple[str, bytes]], virtual_sizes: dict[str, int] | None = None) -> Path:
    path = tmp_path / "test.efi"
    path.write_bytes(fake_pe(sections, virtual_sizes))
    return path


def test_prediction_from_a_uki_file(tmp_path: Path) -> None:
    # Stub sections first (not measured), the UKI's in ukify's file order, a .pcrsig that must not count.
    uki = _uki(tmp_path, [
        (".text", b"\x90" * 100), (".sbat", b"sbat,1\n"), (".osrel", b"ID=debian\n"), (".cmdline", b"console=ttyS0"),
        (".uname", b"6.12.0\n"), (".pcrsig", b"{}"), (".linux", b"not a kernel"), (".initrd", b"initrd-bytes"),
    ])
    sections = {**SYSTEMD_MEASURE_SECTIONS, ".sbat": b"sbat,1\n"}
    assert predict_pcr11(uki).hex() == predict_pcr11_from_sections(sections).hex()
    without_sbat = predict_pcr11_from_sections(SYSTEMD_MEASURE_SECTIONS).hex()
    assert predict_pcr11(uki).hex() != without_sbat
    assert expected_pcrs(uki) == {11: predict_pcr11(uki).hex("sha256")}
    assert expected_pcrs(uki, bank="sha1", phases=["enter-initrd"]) == {
        11: predict_pcr11_from_sections(sections, ["enter-initrd"]).hex("sha1")}


def test_sections_are_read_to_their_virtual_size(tmp_path: Path) -> None:
    data = fake_pe([(".linux", b"KERNEL"), (".cmdline", b"quiet")], virtual_sizes={".linux": 9000, ".cmdline": 3})
    image = parse_pe(data)
    linux, cmdline = image.sections
    assert (linux.virtual_size, linux.raw_size, cmdline.raw_size) == (9000, 512, 512)
    # Beyond SizeOfRawData the loader maps zeros; VirtualSize cuts the file alignment padding.
    assert section_bytes(data, linux) == b"KERNEL" + bytes(506) + bytes(9000 - 512)
    assert section_bytes(data, cmdline) == b"qui"


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(PcrPredictionError, match=r"no \.linux section"):
        predict_pcr11(_uki(tmp_path, [(".cmdline", b"quiet")]))
    with pytest.raises(PcrPredictionError, match=r"\.profile sections; PCR 11 of multi-profile"):
        predict_pcr11(_uki(tmp_path, [(".linux", b"K"), (".profile", b"ID=1")]))
    not_pe = tmp_path / "not.efi"
    not_pe.write_bytes(b"ELF")
    with pytest.raises(PcrPredictionError, match="not a PE executable"):
        predict_pcr11(not_pe)
    with pytest.raises(PcrPredictionError, match="cannot read"):
        predict_pcr11(tmp_path / "missing.efi")
    with pytest.raises(PeError, match="truncated"):
        parse_pe(fake_pe([(".linux", b"K")])[:0x80 + 30])
    with pytest.raises(PcrPredictionError, match="unknown PCR bank 'md5'"):
        predict_pcr11_from_sections(SYSTEMD_MEASURE_SECTIONS, banks=["md5"])
    with pytest.raises(PcrPredictionError, match="was not predicted"):
        predict_pcr11_from_sections(SYSTEMD_MEASURE_SECTIONS, banks=["sha256"]).value("sha1")
