"""The machine's TPM as tests see it: PCR values read in the guest and its measured-boot logs.

    assert machine.pcrs()[11] == mkosi_image.expected_pcrs()[11]

PCR values are PcrValue strings (lowercase hex) that also carry their bank, index and where they came
from, so that pytest's assertion report (checks/pcr.py) can explain a mismatch from the event logs.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imagebuild.boot.tpm_eventlog import EVENT_LOG_PATH, Event, EventLog, EventLogError, parse_event_log
from imagebuild.boot.tpm_measure_log import MEASURE_LOG_PATH, parse_measure_log
from pytest_mkosi.machine.base import Commands

if TYPE_CHECKING:
    import paramiko

    from imagebuild.boot.pcr import Pcr11Prediction

PCR_COUNT = 24
# Linux 5.12+ exposes every PCR of every active bank here: no tpm2-tools needed in the image.
SYSFS_PCRS = "/sys/class/tpm/tpm0/pcr-{bank}"
_PCRREAD_LINE = re.compile(r"^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$")


class PcrValue(str):
    """A PCR's value in lowercase hex, knowing its bank, number (`pcr`) and source ("sysfs", "tpm2_pcrread" or
    "predicted"). Compares as the plain string. Measured values can fetch the machine's event logs,
    predicted ones carry their prediction: both are what a mismatch report needs."""

    bank: str
    pcr: int
    source: str
    prediction: Pcr11Prediction | None
    _event_log: Callable[[], MeasuredBoot] | None

    def __new__(cls, value: str, *, bank: str, pcr: int, source: str,
                prediction: Pcr11Prediction | None = None,
                event_log: Callable[[], MeasuredBoot] | None = None) -> PcrValue:
        self = super().__new__(cls, value.strip().lower())
        self.bank, self.pcr, self.source = bank, pcr, source
        self.prediction, self._event_log = prediction, event_log
        return self

    @property
    def measured(self) -> bool:
        return self.source != "predicted"

    def event_log(self) -> MeasuredBoot | None:
        return self._event_log() if self._event_log is not None else None


@dataclass(frozen=True)
class MeasuredBoot:
    """The firmware's event log and systemd's userspace log of one boot."""

    firmware: EventLog
    userspace: tuple[Event, ...]

    @property
    def events(self) -> list[Event]:
        """Everything measured, in order: the firmware's (systemd-stub's included), then userspace's."""
        return [*self.firmware.events, *self.userspace]


class TpmError(AssertionError):
    """The machine has no TPM, or it cannot be read."""


class Tpm(Commands):
    """pcrs() and tpm_event_log() on top of run() and an SSH client (for SFTP)."""

    @property
    @abc.abstractmethod
    def ssh(self) -> paramiko.SSHClient:
        """The connected SSH client (SFTP reads the binary event log)."""

    def pcrs(self, bank: str = "sha256") -> dict[int, PcrValue]:
        """{index: value} of every PCR of `bank`, read in the guest (sysfs, else tpm2_pcrread)."""
        __tracebackhide__ = True
        directory = SYSFS_PCRS.format(bank=bank)
        result = self.run(f"cd {directory} && for i in $(seq 0 {PCR_COUNT - 1}); do echo $i $(cat $i); done")
        if result.returncode == 0:
            return {int(index): self._value(value, bank, int(index), "sysfs")
                    for index, value in (line.split() for line in result.stdout.splitlines() if " " in line)}
        pcrread = self.run(["tpm2_pcrread", f"{bank}:all"])
        if pcrread.returncode != 0:
            has_tpm = self.run("test -e /sys/class/tpm/tpm0").returncode == 0
            raise TpmError(f"cannot read the {bank} PCRs of {self.name}: "
                           + (f"no {directory} and no tpm2_pcrread ({pcrread.stderr.strip()})" if has_tpm else
                              "it has no TPM (QemuSwtpm=yes, or auto with swtpm installed and UEFI firmware)"))
        values = {}
        for line in pcrread.stdout.splitlines():
            if match := _PCRREAD_LINE.match(line):
                values[int(match[1])] = self._value(match[2], bank, int(match[1]), "tpm2_pcrread")
        return values

    def _value(self, value: str, bank: str, index: int, source: str) -> PcrValue:
        return PcrValue(value, bank=bank, pcr=index, source=source, event_log=self.tpm_event_log)

    def tpm_event_log(self) -> MeasuredBoot:
        """The firmware's measured-boot log (read as bytes over SFTP) and systemd's tpm2-measure.log."""
        __tracebackhide__ = True
        with self.ssh.open_sftp() as sftp:
            try:
                with sftp.open(EVENT_LOG_PATH, "rb") as f:
                    firmware = f.read()
            except OSError as e:
                raise TpmError(f"{self.name} has no firmware event log at {EVENT_LOG_PATH}: {e}") from None
            try:
                with sftp.open(MEASURE_LOG_PATH, "rb") as f:
                    userspace = f.read().decode(errors="replace")
            except OSError:
                userspace = ""  # nothing measured from userspace (no systemd-pcrphase ran)
        try:
            return MeasuredBoot(parse_event_log(firmware), tuple(parse_measure_log(userspace)))
        except EventLogError as e:
            raise TpmError(f"{self.name}: {e}") from None
