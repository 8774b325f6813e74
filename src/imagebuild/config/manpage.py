"""The reference as a roff man page (man(7) macros), rendered from the document model of config/docs.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagebuild.config.docs import Section


def _escape(text: str) -> str:
    """Text as roff reads it literally: backslashes escaped, '-' as the ASCII hyphen-minus (\\-), so that
    options copied from the page work; '...' instead of the ellipsis character for plain terminals."""
    return text.replace("\\", "\\e").replace("-", "\\-").replace("\u2026", "...")


def _inline(text: str) -> str:
    """A paragraph with `code` spans in bold."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unmatched backquote is an ordinary character
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    return "".join(f"\\fB{_escape(p)}\\fR" if i % 2 else _escape(p) for i, p in enumerate(parts))


def _line(text: str) -> str:
    # A line starting with '.' or "'" would be read as a request: \& in front makes it text.
    return "\\&" + text if text.startswith((".", "'")) else text


def format_man_page(sections: list[Section]) -> str:
    from imagebuild import __version__

    out = [f'.TH IMAGEBUILD 1 "" "imagebuild {__version__}" "User Commands"']
    for section in sections:
        macro = ".SH" if section.level == 1 else ".SS"
        out.append(f'{macro} "{_escape(section.title.upper() if section.level == 1 else section.title)}"')
        for paragraph in section.paragraphs:
            out += [".PP", _line(_inline(paragraph))]
        if section.synopsis:
            out += [".PP", ".nf"]
            out += [_line(f"\\fB{_escape(line)}\\fR") for line in section.synopsis]
            out.append(".fi")
        for entry in section.entries:
            out += [".TP", ", ".join(f"\\fB{_escape(t)}\\fR" for t in entry.terms), _line(_inline(entry.text))]
    return "\n".join(out) + "\n"
