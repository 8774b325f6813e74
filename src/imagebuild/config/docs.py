"""`imagebuild documentation` and `imagebuild help`, generated from the settings table.

The reference is one document model (sections of paragraphs, synopsis lines and term/description
entries) built from the table; it is rendered as pandoc-flavoured Markdown here and as a roff man page in
config/manpage.py, so every form of the documentation says the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagebuild.config.enums import Verb
from imagebuild.config.setting import Setting
from imagebuild.config.settings import SECTIONS, SETTINGS

SUMMARY_LINE = "build OS images from mkosi configuration trees"

_INTRO = (
    "imagebuild builds OS images from mkosi configuration trees. It reads the configuration language of "
    "mkosi v22 (`mkosi.conf`, `mkosi.conf.d/`, `mkosi.local.conf`, `mkosi.profiles/`, `mkosi.images/`, "
    "`[Match]` and `[TriggerMatch]`, specifiers `%d` `%r` `%a` `%t` `%o` `%O` `%i` `%v` `%%`) and resolves "
    "a tree to the same values mkosi v22 does. One deliberate difference: a value given on the command "
    "line always wins over the files.",
)

_SETTINGS_INTRO = (
    "Settings are read from the sections named below, in `mkosi.conf`, the files of `mkosi.conf.d/` and "
    "the other configuration files; each one can also be given on the command line with the options "
    "listed beside it.",
)

_USAGE = [
    ("summary", ""),
    ("build", "[command line...]"),
    ("shell", "[command line...]"),
    ("boot", "[nspawn settings...]"),
    ("qemu", "[qemu parameters...]"),
    ("vmspawn", "[vmspawn settings...]"),
    ("ssh", "[command line...]"),
    ("journalctl", "[command line...]"),
    ("coredumpctl", "[command line...]"),
    ("clean", ""),
    ("serve", ""),
    ("burn", "<device>"),
    ("bump", ""),
    ("genkey", ""),
    ("documentation", ""),
    ("help", ""),
]

_CLI_ONLY = [
    ("-f, --force", "Replace existing outputs; twice also caches, three times the package cache."),
    ("-C, --directory=PATH", "Read the configuration from PATH instead of the current directory."),
    ("--debug", "Print more about what happens."),
    ("--debug-shell", "Open a shell in the image when a command in it fails."),
    ("--debug-workspace", "Keep the workspace directory when an error occurs."),
    ("--no-pager", "Print help and Markdown documentation directly instead of through a pager."),
    ("--json", "Print the summary as JSON."),
    ("--version", "Print the version."),
    ("-h, --help", "Print this help."),
    ("--genkey-common-name=CN", "The common name of keys made by genkey (default: mkosi of %u)."),
    ("--genkey-valid-days=DAYS", "How long keys made by genkey are valid (default: 730)."),
    ("-B, --auto-bump", "Bump the version in mkosi.version after a successful build."),
    ("--no-install-cache", "Install packages even if the install cache has this installed tree."),
    ("--doc-format=FORMAT", "How imagebuild documentation shows this reference: man (the man page in man), "
                            "pandoc (the Markdown turned into a man page by pandoc), markdown (the Markdown, "
                            "through a pager on a terminal), system (the man page installed on this system) "
                            "or auto (the first of these that works; the default)."),
]


@dataclass(frozen=True)
class Entry:
    """One described item: its names (each shown as code) and a paragraph that may hold `code` spans."""

    terms: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Section:
    title: str
    level: int = 1  # 1: a top-level section (.SH, #), 2: a subsection (.SS, ##)
    paragraphs: tuple[str, ...] = ()
    synopsis: tuple[str, ...] = ()  # command lines, each shown as code on a line of its own
    entries: tuple[Entry, ...] = ()


def _options(s: Setting) -> str:
    value = f"={s.metavar}" if s.flag is None else f"[={s.metavar}]"
    return ", ".join((*s.options[:-1], s.options[-1] + value))


def _default(s: Setting) -> str:
    if s.default_doc:
        return s.default_doc
    d = s.default
    if d is None or d == () or d == {}:
        return "unset"
    if isinstance(d, bool):
        return "yes" if d else "no"
    return str(d)


def _setting_entry(s: Setting) -> Entry:
    extra = []
    if s.specifier:
        extra.append(f"Specifier: `%{s.specifier}`.")
    if s.match is not None:
        extra.append("Usable in [Match].")
    if s.paths:
        extra.append("Default paths: " + ", ".join(f"`{p}`" for p in s.paths) + ".")
    if s.choices:
        extra.append("Accepted: " + ", ".join(f"`{c}`" for c in s.choices) + ".")
    if s.not_yet is not None:
        extra.append(f"Not supported yet: builds it matters to stop ({s.not_yet.advice}).")
    text = f"{s.help} Default: {_default(s)}. {' '.join(extra)}".strip()
    return Entry((f"{s.name}=", *_options(s).split(", ")), text)


def document() -> list[Section]:
    """The reference: what imagebuild documentation shows, in every form."""
    sections = [
        Section("NAME", paragraphs=(f"imagebuild - {SUMMARY_LINE}",)),
        Section("SYNOPSIS", synopsis=tuple(f"imagebuild [options...] {v} {a}".rstrip() for v, a in _USAGE)),
        Section("DESCRIPTION", paragraphs=_INTRO),
        Section("Command-line-only options", level=2,
                entries=tuple(Entry(tuple(o.split(", ")), h) for o, h in _CLI_ONLY)),
        Section("CONFIGURATION SETTINGS", paragraphs=_SETTINGS_INTRO),
    ]
    for section in SECTIONS:
        entries = tuple(_setting_entry(s) for s in SETTINGS if s.section == section)
        sections.append(Section(f"[{section}] section", level=2, entries=entries))
    sections.append(Section("SEE ALSO", paragraphs=("`mkosi`(1), `systemd-nspawn`(1), `qemu`(1)",)))
    return sections


def format_help() -> str:
    """The text of imagebuild -h / help: usage, verbs and every option."""
    verbs = [v.value for v in Verb]
    assert sorted(verbs) == sorted(v for v, _ in _USAGE)
    from imagebuild import __version__

    lines = [f"imagebuild {__version__} (the configuration language of mkosi v22)", "", "usage:"]
    lines += [f"  imagebuild [options...] {v:<13} {a}".rstrip() for v, a in _USAGE]
    lines += ["  imagebuild -h | --help", "  imagebuild --version", "", "Command-line-only options:"]
    lines += [f"  {o:<32} {h}" for o, h in _CLI_ONLY]
    for section in SECTIONS:
        lines += ["", f"[{section}] settings:"]
        for s in SETTINGS:
            if s.section == section:
                lines.append(f"  {_options(s):<32} {s.help}")
    return "\n".join(lines) + "\n"


# Outside code spans: characters that Markdown (pandoc's) would read as markup. A '_' inside a word is
# plain text to pandoc, one that starts a word would open emphasis.
_MARKDOWN_SPECIAL = re.compile(r"([\\*<>]|(?<![A-Za-z0-9])_)")


def _markdown_text(text: str) -> str:
    parts = text.split("`")
    # Even pieces are text, odd pieces are code spans (kept as they are).
    return "`".join(p if i % 2 else _MARKDOWN_SPECIAL.sub(r"\\\1", p) for i, p in enumerate(parts))


def format_markdown() -> str:
    """The reference as Markdown with a pandoc title block (`pandoc -s -t man` makes imagebuild(1) of it)."""
    from imagebuild import __version__

    out = ["% imagebuild(1)", f"% imagebuild {__version__}", "%", ""]
    for section in document():
        out += ["#" * section.level + " " + section.title, ""]
        for paragraph in section.paragraphs:
            out += [_markdown_text(paragraph), ""]
        for line in section.synopsis:
            out += [f"`{line}`", ""]
        for entry in section.entries:
            out += [", ".join(f"`{t}`" for t in entry.terms), f":   {_markdown_text(entry.text)}", ""]
    return "\n".join(out)


def format_documentation(doc_format: str) -> str:
    """The reference in a form: "man" gives a roff man page, "markdown" (and anything else) Markdown."""
    if doc_format == "man":
        from imagebuild.config.manpage import format_man_page

        return format_man_page(document())
    return format_markdown()
