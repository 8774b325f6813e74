"""A slice as text a person reads: journal lines with their priority, the console's tail, coredumps, failed
units, badness hits and the boot's timings."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_mkosi.evidence.badness import Hit
from pytest_mkosi.evidence.boottime import BootTimings
from pytest_mkosi.evidence.collect import Coredump, Slice

PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
CONSOLE_TAIL = 40


def _field(entry: Mapping[str, Any], name: str) -> str:
    value = entry.get(name, "")
    if isinstance(value, list):  # non-UTF-8 values come as byte arrays
        return bytes(value).decode(errors="replace")
    return str(value)


def journal_line(entry: Mapping[str, Any]) -> str:
    """e.g. `12:03:04.512 err     crasher.service systemd[1]: crasher.service: Failed with result 'core-dump'.`"""
    try:
        stamp = int(_field(entry, "__REALTIME_TIMESTAMP")) / 1e6
        when = time.strftime("%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp * 1000) % 1000:03d}"
    except ValueError:
        when = "??:??:??.???"
    try:
        priority = PRIORITIES[int(_field(entry, "PRIORITY"))]
    except (ValueError, IndexError):
        priority = "?"
    ident = _field(entry, "SYSLOG_IDENTIFIER") or _field(entry, "_COMM") or "?"
    pid = _field(entry, "_PID") or _field(entry, "SYSLOG_PID")
    who = f"{ident}[{pid}]" if pid else ident
    return f"{when} {priority:<7} {who}: {_field(entry, 'MESSAGE')}"


def journal_text(entries: Sequence[Mapping[str, Any]], lines: int) -> str:
    """The last `lines` entries, readable (times UTC)."""
    shown = list(entries)[-lines:] if lines else []
    head = f"({len(entries) - len(shown)} earlier entries in the artifacts)\n" if len(shown) < len(entries) else ""
    return head + "\n".join(journal_line(e) for e in shown) if shown else "(no journal entries)"


def console_tail(text: str, lines: int = CONSOLE_TAIL) -> str:
    tail = text.rstrip().splitlines()[-lines:]
    return "\n".join(tail) if tail else "(the console printed nothing)"


def coredumps_text(dumps: Sequence[Coredump]) -> str:
    parts = []
    for dump in dumps:
        head = f"PID {dump.pid} ({dump.executable}) signal {dump.signal}" + (f" in {dump.unit}" if dump.unit else "")
        if dump.pid == "?":  # seen by PID 1 only: the info says it all
            parts.append(dump.info)
            continue
        parts.append(head + ("\n" + dump.info if dump.info else "") +
                     (f"\n(core: {len(dump.core)} bytes, in the artifacts)" if dump.core else ""))
    return "\n\n".join(parts)


def hits_text(hits: Sequence[Hit]) -> str:
    return "\n".join(f"  {hit}" for hit in hits)


def death_text(found: Slice) -> str:
    why = "it was powered off by the test" if found.on_purpose else "it died"
    return f"{found.died}: {why}. The console's last lines:\n{console_tail(found.console)}"


def timings_text(timings: BootTimings) -> str:
    phases = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in timings.as_dict().items() if seconds or
                       name in ("userspace", "total"))
    slowest = "\n".join(f"  {seconds:>7.2f}s {unit}" for unit, seconds in timings.slowest_units)
    return phases + ("\nslowest units:\n" + slowest if slowest else "")


def sections(found: Slice, *, journal_lines: int, hits: Sequence[Hit] = ()) -> list[tuple[str, str]]:
    """The report sections of a failed test: (title, text)."""
    result = []
    if found.died is not None:
        result.append(("mkosi machine", death_text(found)))
    if hits:
        result.append(("mkosi badness", hits_text(hits)))
    result.append(("mkosi journal", journal_text(found.entries, journal_lines)))
    result.append(("mkosi console", console_tail(found.console)))
    if found.coredumps:
        result.append(("mkosi coredumps", coredumps_text(found.coredumps)))
    if found.failed_units:
        result.append(("mkosi failed units", found.failed_units))
    return result
