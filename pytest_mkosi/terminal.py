"""The plugin's lines for the user's terminal ("pytest-mkosi: built ...").

An xdist worker has no terminal of its own: its lines ride on the next test report it sends (an extra
attribute, which xdist's report serialization carries over) and the controller prints them with the
worker's name.
"""

from __future__ import annotations

import contextlib

import pytest

PREFIX = "pytest-mkosi: "
_ATTRIBUTE = "mkosi_terminal_lines"
_PENDING = pytest.StashKey[list[str]]()


def _worker(config: pytest.Config) -> str | None:
    # Only a real worker has workerinput (a session pytest runs from a worker inherits its environment).
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput.get("workerid", "worker")) if workerinput is not None else None


def say(config: pytest.Config, line: str) -> None:
    """Show line on the user's terminal, now or (from an xdist worker) with the next report."""
    if _worker(config) is not None:
        config.stash.setdefault(_PENDING, []).append(line)
        return
    _write(config, PREFIX + line)


def _write(config: pytest.Config, text: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    # Fixtures run while output is captured; this line is for the user's terminal.
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line(text)


def attach(config: pytest.Config, report: pytest.TestReport) -> None:
    """In a worker: hand the lines said so far to this report (called as each report is made)."""
    pending = config.stash.get(_PENDING, [])
    if pending and _worker(config) is not None:
        setattr(report, _ATTRIBUTE, list(pending))
        pending.clear()


class Relay:
    """In the controller: prints the lines a worker's report carries (registered as a plugin)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        lines = getattr(report, _ATTRIBUTE, None)
        if not lines or _worker(self.config) is not None:
            return
        worker = getattr(getattr(report, "node", None), "gateway", None)
        name = f"[{worker.id}] " if worker is not None else ""
        for line in lines:
            _write(self.config, f"{PREFIX}{name}{line}")
