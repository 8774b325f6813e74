"""The badness gate: what in a machine's journal or console means something went wrong, whatever the test checked.

Journal entries are matched on their structured fields (MESSAGE_ID, UNIT, _TRANSPORT, PRIORITY ...); text is
matched only where the source has no structure: kernel messages (on the journal's kernel transport or the
console), PID 1's messages without an id (ordering cycles, generators), and sanitizer reports on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Message ids from systemd's catalog (/usr/lib/systemd/catalog/systemd.catalog).
COREDUMP = "fc2e22bc6ee647b6b90729ab34a250b1"
# "Unit failed": PID 1's "<unit>: Failed with result '<result>'.", with the result in UNIT_RESULT=.
UNIT_RESULT = "d9b373ed55a64feb8242e02dbe79a49c"
# "Unit succeeded" ("Deactivated successfully."): every unit that stops cleanly logs it; never a hit.
UNIT_SUCCEEDED = "7ad2d189f7e94e70a38c781354912448"
START_JOB_DONE = "39f53479d3a045ac8e11786248231fbf"
# "Unit process exited": "<unit>: Main process exited, code=killed, status=11/SEGV", with EXIT_CODE= and
# EXIT_STATUS= (the signal's number when killed). A crash shows here even where no core was written.
UNIT_PROCESS_EXIT = "98e322203f7a4ed290d09fe03c09fe15"
# Signals that mean the program crashed (ILL, TRAP, ABRT, BUS, FPE, SEGV, SYS), not that it was stopped.
CRASH_SIGNALS = frozenset({"4", "5", "6", "7", "8", "11", "31"})
OOM_KILL_UNIT = "fe6faa94e7774663a0da52717891d8ef"
OOMD_KILL = "d989611b15e44c9dbf31e3c81256e4ed"

Entry = Mapping[str, Any]


@dataclass(frozen=True)
class Hit:
    """One thing that went wrong: which rule, the unit it concerns (if any) and the line that shows it."""

    rule: str
    text: str
    unit: str | None = None

    def __str__(self) -> str:
        where = f" [{self.unit}]" if self.unit else ""
        return f"{self.rule}{where}: {self.text}"


# Kernel lines (journal transport "kernel", or the console) that mean the kernel is unwell.
KERNEL_RULES: Sequence[tuple[str, re.Pattern[str]]] = [
    ("kernel panic", re.compile(r"Kernel panic - not syncing")),
    ("kernel oops", re.compile(r"\bOops(?: -)?[: ]|\bOops\b.*\[#\d+\]")),
    ("kernel BUG", re.compile(r"\bBUG: (?!soft lockup)")),
    ("kernel warning", re.compile(r"WARNING: CPU: \d+")),
    ("soft lockup", re.compile(r"soft lockup - CPU#\d+ stuck")),
    ("hard lockup", re.compile(r"Watchdog detected hard LOCKUP|hard LOCKUP on cpu")),
    ("RCU stall", re.compile(r"rcu: INFO: rcu_\w+ (?:self-)?detected (?:stalls?|expedited stalls)|"
                             r"rcu_\w+ detected stalls")),
    ("OOM kill", re.compile(r"Out of memory: Killed process|oom-kill:")),
]

# PID 1's messages that carry no message id.
MANAGER_RULES: Sequence[tuple[str, re.Pattern[str]]] = [
    ("ordering cycle", re.compile(r"Found ordering cycle on |Job .* deleted to break ordering cycle")),
    ("failed generator", re.compile(r"[Gg]enerator .* (?:failed with exit status|terminated by signal)|"
                                    r"(?:failed with exit status|terminated by signal).*generator")),
]

SANITIZER = re.compile(r"ERROR: (?:Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|"
                       r"SUMMARY: (?:Address|Undefined)\w*Sanitizer|runtime error: ")

EMERGENCY_TARGETS = frozenset({"emergency.target", "rescue.target", "emergency.service", "rescue.service"})


def _unit(entry: Entry) -> str | None:
    for field in ("UNIT", "USER_UNIT", "_SYSTEMD_UNIT"):
        value = entry.get(field)
        if isinstance(value, str) and value:
            return value
    return None


def _message(entry: Entry) -> str:
    value = entry.get("MESSAGE", "")
    if isinstance(value, list):  # journalctl -o json gives non-UTF-8 messages as byte arrays
        return bytes(value).decode(errors="replace")
    return str(value)


def scan_entry(entry: Entry) -> Hit | None:
    """The rule a journal entry (a dict of `journalctl -o json`) breaks, None when it is harmless."""
    message_id = entry.get("MESSAGE_ID")
    message = _message(entry)
    if message_id == COREDUMP:
        exe = entry.get("COREDUMP_EXE") or entry.get("COREDUMP_COMM") or "?"
        return Hit("coredump", f"{exe} dumped core (signal {entry.get('COREDUMP_SIGNAL_NAME', '?')})",
                   entry.get("COREDUMP_UNIT") or _unit(entry))
    if message_id == UNIT_RESULT and entry.get("UNIT_RESULT", "failed") != "success":
        result = entry.get("UNIT_RESULT")
        rule = "OOM kill" if result == "oom-kill" else "crashed unit" if result == "core-dump" else "failed unit"
        return Hit(rule, message, _unit(entry))
    if message_id == UNIT_PROCESS_EXIT and (
            entry.get("EXIT_CODE") == "dumped"
            or (entry.get("EXIT_CODE") == "killed" and str(entry.get("EXIT_STATUS")) in CRASH_SIGNALS)):
        return Hit("crashed unit", message, _unit(entry))
    if message_id in (OOM_KILL_UNIT, OOMD_KILL):
        return Hit("OOM kill", message, _unit(entry))
    if message_id == START_JOB_DONE and _unit(entry) in EMERGENCY_TARGETS:
        return Hit("emergency mode", message, _unit(entry))
    if entry.get("_TRANSPORT") == "kernel":
        return scan_kernel_line(message)
    if str(entry.get("_PID")) == "1" or entry.get("SYSLOG_IDENTIFIER") in ("systemd", "systemd-generator"):
        for rule, pattern in MANAGER_RULES:
            if pattern.search(message):
                return Hit(rule, message, _unit(entry))
    if entry.get("_TRANSPORT") == "stdout" and SANITIZER.search(message):
        return Hit("sanitizer report", message, _unit(entry))
    return None


def scan_kernel_line(line: str) -> Hit | None:
    for rule, pattern in KERNEL_RULES:
        if pattern.search(line):
            return Hit(rule, line.strip())
    return None


def scan_journal(entries: Iterable[Entry]) -> list[Hit]:
    return [hit for entry in entries if (hit := scan_entry(entry)) is not None]


# What the console shows of an emergency shell, when the journal may not be reachable any more.
CONSOLE_RULES: Sequence[tuple[str, re.Pattern[str]]] = [
    ("emergency mode", re.compile(r"You are in (?:emergency|rescue) mode")),
    *MANAGER_RULES,
]


def scan_console(text: str) -> list[Hit]:
    """Kernel trouble and emergency shells on a console (the journal holds the rest, structured)."""
    hits: list[Hit] = []
    for line in text.splitlines():
        hit = scan_kernel_line(line)
        if hit is None:
            hit = next((Hit(rule, line.strip()) for rule, pattern in CONSOLE_RULES if pattern.search(line)), None)
        if hit is not None:
            hits.append(hit)
    return hits


@dataclass(frozen=True)
class Allowance:
    """@pytest.mark.mkosi_allow(...) or the ini's mkosi_allow: a unit name or a regular expression that a
    hit's rule, unit or text may match, with why it is allowed."""

    pattern: str
    reason: str = ""

    def allows(self, hit: Hit) -> bool:
        if hit.unit is not None and self.pattern == hit.unit:
            return True
        if self.pattern == hit.rule:
            return True
        try:
            return re.search(self.pattern, hit.text) is not None
        except re.error:
            return self.pattern in hit.text


def unexpected(hits: Iterable[Hit], allowances: Iterable[Allowance]) -> list[Hit]:
    """The hits no allowance covers, each once."""
    allowed = list(allowances)
    seen: set[Hit] = set()
    result = []
    for hit in hits:
        if hit in seen or any(a.allows(hit) for a in allowed):
            continue
        seen.add(hit)
        result.append(hit)
    return result
