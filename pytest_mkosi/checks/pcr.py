"""PCRs predicted from a built image, and the assertion report when a measured one is not the predicted one.

Predicted today: PCR 11 (systemd-stub's UKI sections and systemd's boot phases), from the image's UKI
alone. PCR 7 (Secure Boot policy) is not predicted: it measures the firmware's SecureBoot, PK, KEK, db
and dbx variables as OVMF holds them, the EV_SEPARATOR, and the db entry that authorised each loaded
image; with systemd-boot enrolling the keys at first boot, those variables are written by the guest,
not by the build, so a prediction from the artifacts would be a guess. Compare it with the replay of
the firmware's event log instead (machine.tpm_event_log()).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.boot.pcr import BOOTED_PHASES, PCR_KERNEL_BOOT, PcrPredictionError, predict_pcr11
from imagebuild.boot.pcr.explain import explain_pcr11_mismatch
from imagebuild.boot.uki_in_image import extract_uki
from imagebuild.errors import ImageBuildError
from pytest_mkosi.machine.tpm import PcrValue, TpmError

if TYPE_CHECKING:
    from imagebuild.config import Config


def image_uki(config: Config, image: Path, directory: Path) -> Path:
    """The UKI the image boots: the artifact itself for Format=uki, else the one in the disk's ESP."""
    if str(config.format) == "uki":
        return image
    if str(config.format) not in ("disk", "esp"):
        raise PcrPredictionError(f"Format={config.format} images boot no UKI: no PCR 11 to predict")
    from imagebuild.pipeline.subbuilds import tools_tree_for

    return extract_uki(image, directory, tools_tree=tools_tree_for(config))


def expected_pcrs(config: Config, image: Path, bank: str = "sha256", phases: Sequence[str] | None = None
                  ) -> dict[int, PcrValue]:
    """{index: PcrValue} of the PCRs predictable from the built image (PCR 11) after `phases` (None: the
    phases of a booted system)."""
    with tempfile.TemporaryDirectory(prefix="pytest-mkosi-uki-") as directory:
        uki = image_uki(config, image, Path(directory))
        prediction = predict_pcr11(uki, BOOTED_PHASES if phases is None else phases, banks=(bank,))
    return {PCR_KERNEL_BOOT: PcrValue(prediction.hex(bank), bank=bank, pcr=PCR_KERNEL_BOOT, source="predicted",
                                      prediction=prediction)}


def report(left: object, right: object) -> list[str] | None:
    """pytest_assertrepr_compare's lines for `measured == predicted` (either order), else None."""
    if not isinstance(left, PcrValue) or not isinstance(right, PcrValue) or left == right:
        return None
    measured, predicted = (left, right) if left.measured else (right, left)
    if not measured.measured or predicted.measured:
        return [f"PCR {left.pcr} ({left.bank}, {left.source}) {left} != PCR {right.pcr} ({right.bank}, "
                f"{right.source}) {right}"]
    head = f"PCR {measured.pcr} ({measured.bank}) measured ({measured.source}) {measured} != predicted {predicted}"
    if measured.bank != predicted.bank or measured.pcr != predicted.pcr:
        return [head, f"  (comparing {measured.bank} PCR {measured.pcr} with {predicted.bank} PCR {predicted.pcr})"]
    if predicted.prediction is None or measured.pcr != PCR_KERNEL_BOOT:
        return [head]
    try:
        log = measured.event_log()
    except (TpmError, ImageBuildError, OSError, ConnectionError) as e:
        return [head, f"  (no explanation: the event logs could not be read: {e})"]
    if log is None:
        return [head]
    lines = explain_pcr11_mismatch(predicted.prediction, log.events, measured.bank, bytes.fromhex(measured))
    if predicted.prediction.source is not None:
        lines.insert(1, f"  predicted from {predicted.prediction.source.name}")
    return [head, *lines]
