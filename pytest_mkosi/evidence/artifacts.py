"""A test's evidence as files: one folder per test id under the artifacts directory, with safe names."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from pytest_mkosi.evidence.collect import Boot, Coredump, Slice
from pytest_mkosi.evidence.sections import console_tail, coredumps_text, journal_line

_UNSAFE = re.compile(r"[^A-Za-z0-9._+@=-]+")
MAX_NAME = 120


def safe_name(test_id: str) -> str:
    """A folder name for a test id: path separators, brackets and spaces become '_'; long ids are cut and
    get a hash of the whole id, so two tests never share a folder."""
    name = _UNSAFE.sub("_", test_id).strip("._") or "test"
    if len(name) > MAX_NAME or name != test_id.replace("/", "_"):
        digest = hashlib.sha256(test_id.encode()).hexdigest()[:8]
        name = f"{name[:MAX_NAME]}-{digest}"
    return name


def test_directory(root: Path, test_id: str) -> Path:
    """The test's folder, emptied (a previous session's files do not mix with this one's)."""
    directory = root / safe_name(test_id)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def write_slice(directory: Path, found: Slice, *, prefix: str = "") -> dict[str, Path]:
    """journal.json (journalctl's JSON lines), journal.txt, console.txt, coredumps.txt and the small cores,
    failed-units.txt; returns the written files by what they hold."""
    written: dict[str, Path] = {}

    def put(kind: str, name: str, text: str) -> None:
        path = directory / f"{prefix}{name}"
        path.write_text(text)
        written[kind] = path

    put("journal", "journal.json", "".join(json.dumps(e, sort_keys=True) + "\n" for e in found.entries))
    put("journal_text", "journal.txt", "".join(journal_line(e) + "\n" for e in found.entries))
    put("console", "console.txt", found.console)
    if found.failed_units:
        put("failed_units", "failed-units.txt", found.failed_units + "\n")
    if found.coredumps:
        put("coredumps", "coredumps.txt", coredumps_text(found.coredumps) + "\n")
        for dump in found.coredumps:
            if (core := write_core(directory, dump)) is not None:
                written[f"core_{dump.pid}"] = core
    if found.died is not None:
        put("machine", "machine.txt", f"{found.died}\n{console_tail(found.console)}\n")
    return written


def write_boot(directory: Path, boot: Boot) -> dict[str, Path]:
    """A boot's slice (boot-journal.json, ...), its timings (boot-timings.json) and chart (boot-chart.svg)."""
    written = write_slice(directory, boot.slice, prefix="boot-")
    written = {f"boot_{kind}": path for kind, path in written.items()}
    if boot.timings is not None:
        path = directory / "boot-timings.json"
        data = {**boot.timings.as_dict(), "slowest_units": dict(boot.timings.slowest_units)}
        path.write_text(json.dumps(data, indent=2) + "\n")
        written["boot_timings"] = path
    if boot.chart is not None:
        path = directory / "boot-chart.svg"
        path.write_text(boot.chart)
        written["boot_chart"] = path
    return written


def write_core(directory: Path, dump: Coredump) -> Path | None:
    if dump.core is None:
        return None
    path = directory / f"core.{_UNSAFE.sub('_', Path(dump.executable).name) or 'core'}.{dump.pid}"
    path.write_bytes(dump.core)
    return path
