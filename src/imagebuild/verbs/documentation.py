"""documentation: the settings reference, generated from the settings table, shown as mkosi v22 shows its own.

--doc-format= picks the form; auto tries them in v22's order and takes the first that works:
  man       the man page (roff, config/manpage.py) in `man --local-file -`
  pandoc    the Markdown turned into a man page by `pandoc -t man -s`, in `man --local-file -`
  markdown  the Markdown, through a pager on a terminal (--no-pager: printed)
  system    `man 1 imagebuild`: the man page installed on this system, if any
Two departures from v22, whose run() exits on a missing program: a missing man or pandoc makes auto go on
to the next form (as later mkosi does for pandoc), and a form asked for by name that cannot be shown is
one error line saying why and what else to use.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

from imagebuild.config import DocFormat, format_documentation
from imagebuild.errors import ImageBuildError
from imagebuild.log import logger
from imagebuild.tools.pager import page

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

NEEDS_CONFIG = False

AUTO_ORDER = (DocFormat.man, DocFormat.pandoc, DocFormat.markdown, DocFormat.system)

# man-db's exit status for "no manual entry".
_MAN_NOT_FOUND = 16


class Unavailable(Exception):
    """This form cannot be shown here: `program` is missing; the message says where it comes from."""

    def __init__(self, message: str, program: str) -> None:
        super().__init__(message)
        self.program = program


class Failed(Exception):
    """A program of this form ran and failed."""


def _need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise Unavailable(f"{program} is not installed (Debian package {package})", program)
    return path


def _run(argv: list[str], *, input: str | None = None) -> None:
    logger.debug("+ %s", " ".join(argv))
    status = subprocess.run(argv, input=input, text=True, check=False).returncode
    if status != 0:
        raise Failed(f"{' '.join(argv)} failed with exit status {status}")


def _show_man() -> None:
    man = _need("man", "man-db")
    _run([man, "--local-file", "-"], input=format_documentation("man"))


def _show_pandoc() -> None:
    pandoc = _need("pandoc", "pandoc")
    man = _need("man", "man-db")
    converted = subprocess.run([pandoc, "-f", "markdown", "-t", "man", "-s"], input=format_documentation("markdown"),
                               capture_output=True, text=True, check=False)
    if converted.returncode != 0:
        detail = converted.stderr.strip().splitlines()[-1:] or [""]
        raise Failed(f"pandoc failed with exit status {converted.returncode}: {detail[0]}".rstrip(": "))
    _run([man, "--local-file", "-"], input=converted.stdout)


def _show_system() -> None:
    man = _need("man", "man-db")
    status = subprocess.run([man, "1", "imagebuild"], check=False).returncode
    if status == _MAN_NOT_FOUND:
        raise Failed("no man page imagebuild(1) is installed on this system; --doc-format=man shows the one "
                     "generated from the settings table")
    if status != 0:
        raise Failed(f"man 1 imagebuild failed with exit status {status}")


def show_documentation(doc_format: DocFormat, *, pager: bool) -> None:
    """Show the reference in doc_format, or with auto in the first form of AUTO_ORDER that works."""
    forms = list(AUTO_ORDER) if doc_format == DocFormat.auto else [doc_format]
    shows: dict[DocFormat, Callable[[], None]] = {
        DocFormat.man: _show_man,
        DocFormat.pandoc: _show_pandoc,
        DocFormat.markdown: lambda: page(format_documentation("markdown"), pager),
        DocFormat.system: _show_system,
    }
    for i, form in enumerate(forms):
        last = i == len(forms) - 1
        try:
            shows[form]()
            return
        except Unavailable as e:
            if last:
                # Every form but markdown needs man; only pandoc needs pandoc.
                instead = "--doc-format=markdown" if e.program == "man" else "--doc-format=man or markdown"
                raise ImageBuildError(f"--doc-format={form}: {e}; use {instead}, which does without it") from None
            logger.debug("documentation: %s, trying --doc-format=%s", e, forms[i + 1])
        except Failed as e:
            if last:
                raise ImageBuildError(f"--doc-format={form}: {e}") from None
            logger.warning("documentation: %s; trying --doc-format=%s", e, forms[i + 1])


def run(args: Args, images: list[Config]) -> int:
    try:
        show_documentation(DocFormat(args.doc_format), pager=args.pager)
    except KeyboardInterrupt:
        # Ctrl-C in the pager or man: the reader is done, nothing to report.
        return 130
    return 0
