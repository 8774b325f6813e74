"""`imagebuild documentation` and `imagebuild help`, generated from the settings table."""

from __future__ import annotations

import textwrap

from imagebuild.config.enums import Verb
from imagebuild.config.setting import Setting
from imagebuild.config.settings import SECTIONS, SETTINGS

_INTRO = """\
imagebuild builds OS images from mkosi configuration trees. It reads the configuration language of
mkosi v22 (mkosi.conf, mkosi.conf.d/, mkosi.local.conf, mkosi.profiles/, mkosi.images/, [Match] and
[TriggerMatch], specifiers %d %r %a %t %o %O %i %v %%) and resolves a tree to the same values mkosi v22
does. One deliberate difference: a value given on the command line always wins over the files."""

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
    ("--json", "Print the summary as JSON."),
    ("--version", "Print the version."),
    ("-h, --help", "Print this help."),
    ("--genkey-common-name=CN", "The common name of keys made by genkey (default: mkosi of %u)."),
    ("--genkey-valid-days=DAYS", "How long keys made by genkey are valid (default: 730)."),
    ("-B, --auto-bump", "Bump the version in mkosi.version after a successful build."),
    ("--no-install-cache", "Install packages even if the install cache has this installed tree."),
    ("--doc-format=FORMAT", "The format of imagebuild documentation: markdown or man (default: auto)."),
]


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


def _markdown() -> str:
    out = ["# imagebuild", "", _INTRO, "", "## Usage", ""]
    out += [f"    imagebuild [options...] {v} {a}".rstrip() for v, a in _USAGE]
    out += ["", "## Command-line-only options", ""]
    out += [f"`{o}`\n: {h}\n" for o, h in _CLI_ONLY]
    for section in SECTIONS:
        out += [f"## [{section}] section", ""]
        for s in SETTINGS:
            if s.section != section:
                continue
            out.append(f"`{s.name}=`, `{_options(s)}`")
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
            out.append(f": {s.help} Default: {_default(s)}. {' '.join(extra)}".rstrip())
            out.append("")
    return "\n".join(out)


def _man() -> str:
    wrap = textwrap.TextWrapper(width=78, initial_indent="       ", subsequent_indent="       ")
    body = ["IMAGEBUILD(1)", "", "NAME", "       imagebuild - build OS images from mkosi configuration trees",
            "", "DESCRIPTION", *wrap.wrap(_INTRO.replace("\n", " ")), "", "SYNOPSIS"]
    body += [f"       imagebuild [options...] {v} {a}".rstrip() for v, a in _USAGE]
    body += ["", "COMMAND-LINE-ONLY OPTIONS"]
    detail = textwrap.TextWrapper(width=78, initial_indent=" " * 14, subsequent_indent=" " * 14)
    for o, h in _CLI_ONLY:
        body += [f"       {o}", *detail.wrap(h)]
    for section in SECTIONS:
        body += ["", f"[{section.upper()}] SECTION"]
        for s in SETTINGS:
            if s.section == section:
                body.append(f"       {s.name}=, {_options(s)}")
                body += detail.wrap(f"{s.help} Default: {_default(s)}.")
    return "\n".join(body) + "\n"


def format_documentation(doc_format: str) -> str:
    """The documentation: "man" gives man-page-like text, everything else (markdown, auto, ...) Markdown."""
    return _man() if doc_format == "man" else _markdown()
