"""documentation/help with the real programs of this host: man (man-db), less, pandoc where installed."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time

import pytest

from imagebuild.config import SETTINGS, format_documentation
from tests.helpers import imagebuild

needs_man = pytest.mark.skipif(shutil.which("man") is None, reason="man (Debian's man-db) is not installed")


@needs_man
def test_man_page_is_valid_roff() -> None:
    # man-db's own checks: groff warnings for anything it cannot read, and the NAME line whatis reads.
    shown = subprocess.run(["man", "--warnings=all", "--local-file", "-"], input=format_documentation("man"),
                           capture_output=True, text=True, env={**os.environ, "MANWIDTH": "100"}, check=True)
    assert shown.stderr == ""
    assert shown.stdout.splitlines()[0].split() == ["IMAGEBUILD(1)", "User", "Commands", "IMAGEBUILD(1)"]
    assert "\n.TP" not in shown.stdout and "\\fB" not in shown.stdout
    if shutil.which("lexgrog"):
        name = subprocess.run(["lexgrog", "-"], input=format_documentation("man"), capture_output=True, text=True)
        assert "imagebuild - build OS images" in name.stdout


@needs_man
@pytest.mark.parametrize("doc_format", ["man", "auto"])
def test_documentation_in_man(doc_format: str) -> None:
    # stdout is a pipe: man formats the page and prints it instead of paging it.
    result = imagebuild("documentation", f"--doc-format={doc_format}")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("IMAGEBUILD(1)") and "\nNAME\n" in text and "\nSYNOPSIS\n" in text
    assert "   [Content] section\n" in text
    for s in SETTINGS:
        assert f"{s.name}=" in text, s.name


def test_documentation_markdown_printed_when_not_a_terminal() -> None:
    result = imagebuild("documentation", "--doc-format=markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("% imagebuild(1)\n")
    assert result.stdout.rstrip("\n") == format_documentation("markdown").rstrip("\n")


@pytest.mark.skipif(shutil.which("pandoc") is None, reason="pandoc is not installed on this host")
def test_documentation_through_pandoc() -> None:
    result = imagebuild("documentation", "--doc-format=pandoc")
    assert result.returncode == 0, result.stderr
    # pandoc's header keeps the title's case (imagebuild(1)), as mkosi's page has it.
    text = result.stdout
    assert text.upper().startswith("IMAGEBUILD(1)") and "\n   [Content] section\n" in text
    assert "% imagebuild" not in text and "`" not in text  # the Markdown was converted, not shown
    for s in SETTINGS:
        assert f"{s.name}=" in text, s.name


@needs_man
def test_system_form_without_an_installed_page_is_an_error() -> None:
    if subprocess.run(["man", "-w", "1", "imagebuild"], capture_output=True).returncode == 0:
        pytest.skip("this host has an imagebuild(1) man page installed")
    result = imagebuild("documentation", "--doc-format=system")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "imagebuild: error: --doc-format=system: no man page imagebuild(1) is installed" in result.stderr


def _on_terminal(argv: list[str], env: dict[str, str], *, keys: bytes, wait_for: bytes) -> tuple[bytes, int, bool]:
    """Run argv on a pseudo-terminal until `wait_for` shows, note whether it is still running (waiting for
    the reader), type keys, and return everything shown, the exit status and that note."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    shown = b""
    deadline = time.monotonic() + 60
    try:
        while wait_for not in shown and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                try:
                    shown += os.read(fd, 65536)
                except OSError:
                    break
        time.sleep(0.5)
        reaped, status = os.waitpid(pid, os.WNOHANG)
        waiting = reaped == 0
        os.write(fd, keys)
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
        if waiting:
            _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return shown, os.waitstatus_to_exitcode(status), waiting


def _terminal_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PAGER", "MANPAGER", "MKOSI_LESS", "LESS")}
    return {**env, "TERM": "xterm", "LINES": "24", "COLUMNS": "100"}


@pytest.mark.skipif(shutil.which("less") is None, reason="less is not installed")
@pytest.mark.parametrize("verb", ["documentation", "help"])
def test_markdown_and_help_are_paged_on_a_terminal(verb: str) -> None:
    argv = [sys.executable, "-m", "imagebuild", verb, *(["--doc-format=markdown"] if verb == "documentation" else [])]
    first = b"% imagebuild(1)" if verb == "documentation" else b"usage:"
    shown, status, waiting = _on_terminal(argv, _terminal_env(), keys=b"q", wait_for=first)
    assert first in shown
    assert waiting, "the text went past without a pager waiting for the reader"
    assert status == 0
    # less pages: the last setting of the reference was never on the screen.
    assert SETTINGS[-1].name.encode() + b"=" not in shown


@pytest.mark.skipif(shutil.which("less") is None, reason="less is not installed")
def test_no_pager_prints_on_a_terminal() -> None:
    argv = [sys.executable, "-m", "imagebuild", "--no-pager", "help"]
    last = SETTINGS[-1].options[-1].encode()
    shown, status, waiting = _on_terminal(argv, _terminal_env(), keys=b"", wait_for=last)
    assert last in shown and status == 0
    assert not waiting
