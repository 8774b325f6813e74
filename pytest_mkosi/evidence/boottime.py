"""Boot timings from systemd's own timestamps, as `systemd-analyze time` and `blame` compute them.

The figures come from the manager's properties (`systemctl show` of the manager and of each unit), never from
parsing systemd-analyze's text, so they do not change with its wording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

# The manager properties the timings are made of (values in µs, monotonic; 0 = did not happen).
MANAGER_PROPERTIES = (
    "FirmwareTimestampMonotonic", "LoaderTimestampMonotonic", "KernelTimestampMonotonic",
    "InitRDTimestampMonotonic", "UserspaceTimestampMonotonic", "FinishTimestampMonotonic",
)
# Per unit: when it left "inactive" and when it became active (systemd-analyze blame's span); a oneshot
# service without RemainAfterExit= is never active: its span ends when it is inactive again.
UNIT_PROPERTIES = ("Id", "InactiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic",
                   "InactiveEnterTimestampMonotonic")


@dataclass(frozen=True)
class BootTimings:
    """Seconds spent in each phase of one boot; phases that did not happen (no firmware info, no initrd) are 0."""

    firmware: float
    loader: float
    kernel: float
    initrd: float
    userspace: float
    # The slowest units, slowest first: (unit, seconds from activating to active).
    slowest_units: tuple[tuple[str, float], ...] = field(default=())

    @property
    def total(self) -> float:
        return self.firmware + self.loader + self.kernel + self.initrd + self.userspace

    def as_dict(self) -> dict[str, float]:
        phases = {k: v for k, v in asdict(self).items() if k != "slowest_units"}
        return {**phases, "total": self.total}


def _us(properties: Mapping[str, str], name: str) -> int:
    try:
        return int(properties.get(name, "0") or 0)
    except ValueError:
        return 0


def boot_timings(manager: Mapping[str, str], units: Sequence[Mapping[str, str]] | None = None,
                 slowest: int = 10, *, container: bool = False) -> BootTimings:
    """Timings from the manager's properties (and the units' for the slowest ones).

    Firmware and loader timestamps count backwards from the kernel's start (they are given as time before it);
    kernel time runs until the initrd's manager starts, or userspace's when there is no initrd.
    """
    firmware, loader = _us(manager, "FirmwareTimestampMonotonic"), _us(manager, "LoaderTimestampMonotonic")
    initrd, userspace = _us(manager, "InitRDTimestampMonotonic"), _us(manager, "UserspaceTimestampMonotonic")
    finish = _us(manager, "FinishTimestampMonotonic")
    if finish == 0:
        raise ValueError("the machine has not finished booting (FinishTimestampMonotonic is 0)")
    # A container shares the host's monotonic clock and has no kernel, firmware or initrd of its own.
    kernel = 0 if container else (initrd or userspace)
    if container:
        firmware = loader = initrd = 0
    timings = sorted((t for u in units or [] if (t := _unit_span(u))[1] > 0), key=lambda t: -t[1])[:slowest]
    return BootTimings(
        firmware=max(0, firmware - loader) / 1e6 if firmware else 0.0,
        loader=loader / 1e6,
        kernel=kernel / 1e6,
        initrd=(userspace - initrd) / 1e6 if initrd else 0.0,
        userspace=(finish - userspace) / 1e6,
        slowest_units=tuple(timings),
    )


def _unit_span(unit: Mapping[str, str]) -> tuple[str, float]:
    """(unit, seconds from activating to active, or to inactive again for a oneshot); 0 when it did not start."""
    started = _us(unit, "InactiveExitTimestampMonotonic")
    ended = _us(unit, "ActiveEnterTimestampMonotonic") or _us(unit, "InactiveEnterTimestampMonotonic")
    return unit.get("Id", "?"), (ended - started) / 1e6 if started and ended > started else 0.0


def parse_show(text: str) -> list[dict[str, str]]:
    """`systemctl show -p A -p B unit1 unit2 ...` output: one dict per unit (blocks split by blank lines)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    if current:
        blocks.append(current)
    return blocks
