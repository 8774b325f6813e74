"""Boot-time baselines: a JSON file of each cell's boot timings per accelerator, and the comparison that gates CI.

TCG and KVM figures are never compared with each other: the key holds the accelerator.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_mkosi.evidence.boottime import BootTimings

PHASES = ("firmware", "loader", "kernel", "initrd", "userspace", "total")
# Phases shorter than this are noise (a 20 ms initrd "doubling" is no regression).
NOISE_SECONDS = 0.25


def baseline_key(cell: str, accelerator: str | None) -> str:
    return f"{cell}@{accelerator or 'container'}"


def median_timings(boots: Sequence[BootTimings]) -> dict[str, float]:
    if not boots:
        raise ValueError("no boots to take the median of")
    return {phase: statistics.median(b.as_dict()[phase] for b in boots) for phase in PHASES}


@dataclass(frozen=True)
class Regression:
    phase: str
    baseline: float
    measured: float
    limit: float


def compare(measured: dict[str, float], baseline: dict[str, float], tolerance: float) -> list[Regression]:
    """Phases slower than baseline * (1 + tolerance), ignoring differences within the noise."""
    slower = []
    for phase in PHASES:
        if phase not in baseline or phase not in measured:
            continue
        limit = baseline[phase] * (1 + tolerance)
        if measured[phase] > limit and measured[phase] - baseline[phase] > NOISE_SECONDS:
            slower.append(Regression(phase, baseline[phase], measured[phase], limit))
    return slower


def regression_table(regressions: Sequence[Regression], slowest: Sequence[tuple[str, float]] = ()) -> str:
    lines = [f"{'phase':<10} {'baseline':>9} {'now':>9} {'limit':>9}"]
    lines += [f"{r.phase:<10} {r.baseline:>8.2f}s {r.measured:>8.2f}s {r.limit:>8.2f}s" for r in regressions]
    if slowest:
        lines.append("slowest units now:")
        lines += [f"  {seconds:>7.2f}s {unit}" for unit, seconds in slowest]
    return "\n".join(lines)


def load_baseline(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a boot-time baseline file ({e}); remove it or write it anew with "
                         "--mkosi-update-baseline") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a boot-time baseline file (expected a JSON object)")
    return data


def update_baseline(path: Path, key: str, timings: dict[str, float]) -> None:
    """Set one cell's entry, keeping the others; written to a temporary file and renamed (never half-written)."""
    data = load_baseline(path)
    data[key] = {phase: round(timings[phase], 3) for phase in PHASES}
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    partial.rename(path)
