"""A boot that will never finish, told from the console: under TCG a vCPU now and then loses its timer
interrupt for good (seen on this project's 2-core CI host under multi-threaded TCG: the guest sat idle for
the whole 600 s boot timeout). The guest kernel's RCU watchdog names it ("rcu_preempt kthread timer wakeup
didn't happen", "Possible timer handling issue") about a minute in; StallWatch reads the console log as it
grows and raises GuestStalled with that line, so the runner can boot again at once instead of waiting out
its timeout. A plain RCU stall (a slow, overloaded guest) is not matched: such a boot still ends."""

from __future__ import annotations

import re
import time
from pathlib import Path

LOST_TIMER = re.compile(rb"rcu: .*timer wakeup didn't happen|rcu: \s*Possible timer handling issue")
# Reading the log more often buys nothing: the report comes a minute into the stall.
CHECK_INTERVAL = 1.0


class GuestStalled(Exception):
    """The guest's kernel reported a lost timer: this boot cannot finish. `since`: where the boot's console
    output begins in the log."""

    def __init__(self, line: str, *, since: int = 0) -> None:
        super().__init__(f"the guest's kernel lost a timer interrupt and stalls (a TCG fault): {line}")
        self.line = line
        self.since = since


def set_aside(log: Path, since: int) -> Path:
    """Once qemu has exited: move what a cut boot printed (from byte `since` on) out of the console log into
    console.stalled.log beside it, so that the log's readers (the badness gate, wait_for_console_text()) see
    the boots that count, not a TCG fault the runner dealt with. Returns the file it went to."""
    aside = log.with_name("console.stalled.log")
    with log.open("r+b") as f:
        f.seek(since)
        cut = f.read()
        f.truncate(since)
    with aside.open("ab") as f:
        f.write(cut)
    return aside


class StallWatch:
    """What the console log gains after the watch was made (a log appended to across boots)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        try:
            self.start = log.stat().st_size
        except OSError:
            self.start = 0
        self._offset = self.start
        self._partial = b""
        self._checked = 0.0

    def check(self) -> None:
        """Raise GuestStalled when the console printed a lost-timer report since the watch began."""
        now = time.monotonic()
        if now - self._checked < CHECK_INTERVAL:
            return
        self._checked = now
        try:
            with self.log.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if LOST_TIMER.search(line):
                raise GuestStalled(line.decode(errors="replace").strip(), since=self.start)
