"""The machine's console: what it printed (recorded to a file by the runner) and typing on it."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_mkosi.machine.runner import Runner

# Colour and cursor sequences and carriage returns: the text without them is what a person reads.
_TERMINAL_NOISE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\r")


def readable(text: str) -> str:
    return _TERMINAL_NOISE.sub("", text)


class Console:
    """machine.console: wait_for_console_text(), send_console(), console_log()."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        # Where the next wait_for_console_text() starts looking (like pexpect: after the previous match).
        self._position = 0

    def console_log(self) -> str:
        """Everything the console printed so far (all boots), without terminal escape sequences."""
        try:
            raw = self._runner.console_log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return readable(raw.decode(errors="replace"))

    def offset(self) -> int:
        """How many bytes the console printed so far: console_since(offset) is what comes after."""
        try:
            return self._runner.console_log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def console_since(self, offset: int) -> str:
        """What the console printed after `offset` (from offset()), without terminal escape sequences."""
        try:
            with self._runner.console_log_path.open("rb") as f:
                f.seek(offset)
                raw = f.read()
        except FileNotFoundError:
            return ""
        return readable(raw.decode(errors="replace"))

    def wait_for_console_text(self, regex: str, *, timeout: float = 60.0) -> re.Match[str]:
        """Wait until the console prints text matching `regex` (after the previous match); return the match."""
        __tracebackhide__ = True
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            text = self.console_log()
            found = pattern.search(text, self._position)
            if found is not None:
                self._position = found.end()
                return found
            if time.monotonic() >= deadline:
                tail = "\n".join(f"    {line}" for line in text[self._position:].splitlines()[-20:])
                raise AssertionError(f"the console of {self._runner.name} did not print {regex!r} within "
                                     f"{timeout:g}s; it printed since the last match:\n{tail}")
            time.sleep(0.1)

    def send_console(self, text: str) -> None:
        """Type `text` on the console ("\\n" is Enter)."""
        self._runner.send_console(text)

    def skip_to_end(self) -> None:
        """Make the next wait_for_console_text() look only at what comes from now on (e.g. after a reboot)."""
        self._position = len(self.console_log())
