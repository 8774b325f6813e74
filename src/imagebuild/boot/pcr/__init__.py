"""TPM PCR values predicted from built artifacts (PCR 11 from a UKI), and explanations of mismatches.

    from imagebuild.boot.pcr import predict_pcr11, expected_pcrs
    expected_pcrs(Path("image.efi"))                       # {11: "3f…"} (sha256, fully booted)
    predict_pcr11(uki, phases=("enter-initrd",)).hex("sha1")
"""

from imagebuild.boot.pcr.pcr11 import (
    ALL_PHASES,
    BANKS,
    BOOTED_PHASES,
    MEASURED_SECTIONS,
    PCR_KERNEL_BOOT,
    Measurement,
    Pcr11Prediction,
    PcrPredictionError,
    expected_pcrs,
    predict_pcr11,
    predict_pcr11_from_sections,
)

__all__ = [
    "ALL_PHASES",
    "BANKS",
    "BOOTED_PHASES",
    "MEASURED_SECTIONS",
    "PCR_KERNEL_BOOT",
    "Measurement",
    "Pcr11Prediction",
    "PcrPredictionError",
    "expected_pcrs",
    "predict_pcr11",
    "predict_pcr11_from_sections",
]
