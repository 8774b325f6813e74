"""documentation/help: which form is shown, with fake man and pandoc programs on PATH (the process layer).

The fakes record their arguments and what they read on stdin; tests/unit/test_documentation_forms.py runs
the real programs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imagebuild.config import SETTINGS, DocFormat, format_documentation, parse_command_line
from imagebuild.errors import ImageBuildError
from imagebuild.verbs.documentation import show_documentation

# What the fake pandoc prints: a man page that the fake man can tell from ours.
PANDOC_PAGE = '.TH "MADE-BY-PANDOC" "1"'


class Tools:
    """A PATH directory holding only the fake programs a test asks for."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "log"

    def add(self, name: str, body: str) -> None:
        path = self.bin / name
        # The fake finds cat and grep on the real PATH; imagebuild sees only the fakes.
        path.write_text(f"#!/bin/sh\nPATH=/usr/bin:/bin\necho \"{name} $*\" >> {self.log}\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def man(self, *, fail_on_ours: int = 0, status: int = 0) -> None:
        """A man that saves the page it reads from stdin; it exits with fail_on_ours for our own page."""
        self.add("man", f"""if [ "$1" = --local-file ]; then cat > {self.log}.page.$$
  if [ {fail_on_ours} != 0 ] && grep -q '^.TH IMAGEBUILD 1' {self.log}.page.$$; then exit {fail_on_ours}; fi
fi
exit {status}""")

    def pandoc(self, *, status: int = 0) -> None:
        self.add("pandoc", f"""cat > {self.log}.markdown
if [ {status} != 0 ]; then echo "pandoc: something is wrong" >&2; exit {status}; fi
echo '{PANDOC_PAGE}'""")

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def pages(self) -> list[str]:
        return [p.read_text() for p in sorted(self.log.parent.glob("log.page.*"), key=os.path.getmtime)]


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tools:
    t = Tools(tmp_path)
    monkeypatch.setenv("PATH", str(t.bin))
    for variable in ("PAGER", "MANPAGER"):
        monkeypatch.delenv(variable, raising=False)
    return t


def test_auto_shows_our_man_page_in_man(tools: Tools, capsys: pytest.CaptureFixture[str]) -> None:
    tools.man()
    tools.pandoc()
    show_documentation(DocFormat.auto, pager=True)
    assert tools.calls() == ["man --local-file -"]
    [page] = tools.pages()
    assert page.startswith(".TH IMAGEBUILD 1 ")
    assert page == format_documentation("man")
    assert capsys.readouterr().out == ""


def test_auto_goes_on_to_pandoc_when_man_fails_on_our_page(tools: Tools, caplog: pytest.LogCaptureFixture) -> None:
    tools.man(fail_on_ours=3)
    tools.pandoc()
    show_documentation(DocFormat.auto, pager=True)
    assert tools.calls() == ["man --local-file -", "pandoc -f markdown -t man -s", "man --local-file -"]
    assert tools.pages()[-1].strip() == PANDOC_PAGE
    assert (tools.log.parent / "log.markdown").read_text() == format_documentation("markdown")
    assert "exit status 3" in caplog.text and "trying --doc-format=pandoc" in caplog.text


def test_auto_without_man_prints_the_markdown(tools: Tools, capsys: pytest.CaptureFixture[str]) -> None:
    tools.pandoc()  # pandoc alone is no use: its man page is shown by man
    show_documentation(DocFormat.auto, pager=True)  # stdout is no terminal: printed, not paged
    assert tools.calls() == []
    out = capsys.readouterr().out
    assert out.startswith("% imagebuild(1)\n") and out.rstrip("\n") == format_documentation("markdown").rstrip("\n")


def test_auto_without_pandoc_and_failing_man_falls_back_to_markdown(
        tools: Tools, capsys: pytest.CaptureFixture[str]) -> None:
    tools.man(fail_on_ours=1)
    show_documentation(DocFormat.auto, pager=False)
    assert tools.calls() == ["man --local-file -"]
    assert capsys.readouterr().out.startswith("% imagebuild(1)\n")


def test_markdown_is_never_given_to_man(tools: Tools, capsys: pytest.CaptureFixture[str]) -> None:
    tools.man()
    show_documentation(DocFormat.markdown, pager=False)
    assert tools.calls() == []
    assert "## [Content] section" in capsys.readouterr().out


@pytest.mark.parametrize(("form", "needles"), [
    ("man", ["--doc-format=man", "man is not installed", "man-db", "--doc-format=markdown"]),
    ("pandoc", ["--doc-format=pandoc", "pandoc is not installed", "--doc-format=man or markdown"]),
    ("system", ["--doc-format=system", "man is not installed", "man-db"]),
])
def test_a_form_asked_for_whose_program_is_missing_is_one_clear_error(
        tools: Tools, form: str, needles: list[str]) -> None:
    if form == "pandoc":
        tools.man()
    with pytest.raises(ImageBuildError) as error:
        show_documentation(DocFormat(form), pager=True)
    for needle in needles:
        assert needle in str(error.value)
    assert tools.calls() == []


def test_a_form_asked_for_that_fails_is_not_replaced_by_another(tools: Tools) -> None:
    tools.man(fail_on_ours=2)
    with pytest.raises(ImageBuildError, match=r"--doc-format=man: .*exit status 2"):
        show_documentation(DocFormat.man, pager=True)
    assert tools.calls() == ["man --local-file -"]


def test_pandoc_failure_says_what_pandoc_said(tools: Tools) -> None:
    tools.man()
    tools.pandoc(status=64)
    with pytest.raises(ImageBuildError, match="pandoc failed with exit status 64: pandoc: something is wrong"):
        show_documentation(DocFormat.pandoc, pager=True)
    assert tools.calls() == ["pandoc -f markdown -t man -s"]


def test_system_asks_man_for_the_installed_page(tools: Tools) -> None:
    tools.man()
    show_documentation(DocFormat.system, pager=True)
    assert tools.calls() == ["man 1 imagebuild"]


def test_system_without_an_installed_page(tools: Tools) -> None:
    tools.man(status=16)  # man-db: no manual entry
    with pytest.raises(ImageBuildError, match=r"no man page imagebuild\(1\) is installed.*--doc-format=man"):
        show_documentation(DocFormat.system, pager=True)


def test_no_pager_option() -> None:
    assert parse_command_line(["documentation"])[0].pager is True
    args = parse_command_line(["--no-pager", "documentation", "--doc-format=pandoc"])[0]
    assert args.pager is False and args.doc_format == "pandoc"


def test_both_forms_describe_every_setting_and_option() -> None:
    markdown, man = format_documentation("markdown"), format_documentation("man")
    assert "## [Content] section" in markdown and '.SS "[Content] section"' in man
    for s in SETTINGS:
        assert f"`{s.name}=`" in markdown, s.name
        assert f"\\fB{s.name}=\\fR" in man, s.name
        for option in s.options:
            assert f"`{option}" in markdown, option
            assert "\\fB" + option.replace("-", "\\-") in man, option


def test_man_page_escapes_what_roff_would_read_as_requests() -> None:
    from imagebuild.config.docs import Entry, Section
    from imagebuild.config.manpage import format_man_page

    page = format_man_page([Section("X", entries=(Entry(("--a-b",), ".not a request, a\\b `c-d`"),))])
    lines = page.splitlines()
    assert "\\fB\\-\\-a\\-b\\fR" in lines
    assert "\\&.not a request, a\\eb \\fBc\\-d\\fR" in lines
