"""The command line: the verb, the options that exist only there, and one option per setting.

A hand-written parser instead of argparse: it is built from the settings table at no cost at import
time, and options after a verb such as summary (`summary --json`) still count as options.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagebuild.config.enums import DocFormat, Verb
from imagebuild.config.errors import ConfigError
from imagebuild.config.model import Args
from imagebuild.config.overrides import Overrides
from imagebuild.config.setting import Setting
from imagebuild.config.settings import BY_OPTION
from imagebuild.config.values import Ctx, parse_compression, parse_feature, try_boolean

# Command-line-only options without a value (an optional =BOOL is accepted): option -> Args field.
_FLAGS = {
    "--debug": "debug",
    "--debug-shell": "debug_shell",
    "--debug-workspace": "debug_workspace",
    "--json": "json",
    "--auto-bump": "auto_bump",
    "--version": "version",
    "--no-install-cache": "no_install_cache",
}
# Command-line-only options with a value: option -> Args field.
_VALUED = {
    "--directory": "directory",
    "-C": "directory",
    "--genkey-common-name": "genkey_common_name",
    "--genkey-valid-days": "genkey_valid_days",
    "--doc-format": "doc_format",
}
# Short options that need a value (-C and the settings' short options without an optional value).
_SHORT_VALUED = {"C", *(o[1] for o, s in BY_OPTION.items() if len(o) == 2 and s.flag is None)}


def all_options() -> list[str]:
    return sorted({*_FLAGS, *_VALUED, "--no-pager", "--force", "-f", "--help", "-h", *BY_OPTION})


def _unknown(option: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(option, [o for o in all_options() if o.startswith("--")], n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return ConfigError(f"unknown option {option}{hint} (see imagebuild --help)")


def _takes_as_value(setting: Setting, candidate: str) -> bool:
    """Whether the argument after an option with an optional value is that value (--qemu-kvm no)."""
    if candidate in Verb.__members__ or candidate.startswith("-"):
        return False
    try:
        if setting.name == "CompressOutput":
            parse_compression(candidate)
        elif setting.name == "ToolsTree":
            return False
        elif setting.name == "CacheOnly":
            return candidate in ("none", "metadata", "always") or try_boolean(candidate) is not None
        elif setting.parse is parse_feature:
            parse_feature(candidate)
        else:
            return try_boolean(candidate) is not None
    except Exception:
        return False
    return True


def parse_command_line(argv: Sequence[str]) -> tuple[Args, Overrides]:
    """Parse argv (without the program name). Raises ConfigError for unknown options and bad values."""
    argv = list(argv)
    fields: dict[str, object] = {
        "force": 0,
        "debug": False,
        "debug_shell": False,
        "debug_workspace": False,
        "json": False,
        "auto_bump": False,
        "version": False,
        "no_install_cache": False,
        "genkey_common_name": "mkosi of %u",
        "genkey_valid_days": "730",
        "doc_format": "auto",
        "pager": True,
        "directory": None,
    }
    verb: Verb | None = None
    cmdline: list[str] = []
    assignments: list[tuple[Setting, str, str]] = []  # setting, raw value, option as given

    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if verb is not None and verb.supports_cmdline():
            cmdline = argv[i - 1:]
            break
        if arg == "--":
            rest = argv[i:]
            if verb is None and rest and rest[0] in Verb.__members__:
                verb = Verb(rest[0])
                rest = rest[1:]
            cmdline.extend(rest)
            break

        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in ("--help",):
                verb = Verb.help
            elif name == "--force":
                fields["force"] = int(fields["force"]) + 1  # type: ignore[call-overload]
            elif name == "--version":
                # Verb help as well, so a caller that does not look at args.version never builds.
                fields["version"] = True
                verb = Verb.help
            elif name in _FLAGS:
                fields[_FLAGS[name]] = try_boolean(value) if eq else True
                if fields[_FLAGS[name]] is None:
                    raise ConfigError(f"{name}={value}: not a boolean (accepted: yes, no, ...)")
            elif name in _VALUED:
                if not eq:
                    if i >= len(argv):
                        raise ConfigError(f"{name} needs a value")
                    value = argv[i]
                    i += 1
                fields[_VALUED[name]] = value
            elif name == "--no-pager":
                fields["pager"] = False
            elif (setting := BY_OPTION.get(name)) is not None:
                if not eq:
                    if setting.flag is not None:
                        if i < len(argv) and _takes_as_value(setting, argv[i]):
                            value = argv[i]
                            i += 1
                        else:
                            value = setting.flag
                    else:
                        if i >= len(argv):
                            raise ConfigError(f"{name} needs a value ({setting.metavar})")
                        value = argv[i]
                        i += 1
                elif setting.name == "WithTests":
                    # --without-tests=yes means without tests: the option names the negation.
                    b = try_boolean(value)
                    value = "no" if b else "yes" if b is not None else value
                assignments.append((setting, value, name))
            else:
                raise _unknown(name)
            continue

        if arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                c = arg[j]
                j += 1
                if c == "f":
                    fields["force"] = int(fields["force"]) + 1  # type: ignore[call-overload]
                elif c == "h":
                    verb = Verb.help
                elif c == "B":
                    fields["auto_bump"] = True
                elif c in _SHORT_VALUED:
                    value = arg[j:]
                    if not value:
                        if i >= len(argv):
                            raise ConfigError(f"-{c} needs a value")
                        value = argv[i]
                        i += 1
                    if c == "C":
                        fields["directory"] = value
                    else:
                        assignments.append((BY_OPTION[f"-{c}"], value, f"-{c}"))
                    break
                elif (setting := BY_OPTION.get(f"-{c}")) is not None and setting.flag is not None:
                    value = setting.flag
                    if j == len(arg) and i < len(argv) and _takes_as_value(setting, argv[i]):
                        value = argv[i]
                        i += 1
                        if setting.name == "WithTests":
                            b = try_boolean(value)
                            value = "no" if b else "yes"
                    assignments.append((setting, value, f"-{c}"))
                else:
                    raise _unknown(f"-{c}")
            continue

        if verb is None:
            if arg not in Verb.__members__:
                import difflib

                close = difflib.get_close_matches(arg, list(Verb.__members__), n=1)
                raise ConfigError(
                    f"unknown verb {arg!r}" + (f"; did you mean {close[0]}?" if close else "")
                    + f" (verbs: {', '.join(Verb.__members__)})"
                )
            verb = Verb(arg)
        else:
            cmdline.append(arg)

    verb = verb or Verb.build
    if cmdline and not verb.supports_cmdline():
        raise ConfigError(f"imagebuild {verb} takes no further arguments (got: {' '.join(cmdline)})")

    doc_format = str(fields["doc_format"])
    if doc_format not in DocFormat.__members__:
        raise ConfigError(f"--doc-format={doc_format}: accepted: {', '.join(DocFormat.__members__)}")

    directory: Path | None = None
    if fields["directory"] is not None:
        raw_dir = str(fields["directory"])
        if raw_dir:
            directory = Path(raw_dir).expanduser().absolute()
            if not directory.is_dir():
                raise ConfigError(f"--directory={raw_dir}: {directory} is not a directory")

    base = directory or Path.cwd()
    overrides = Overrides()
    for setting, value, option in assignments:
        overrides.add(setting, value, Ctx(base, f"command line {option}"))

    args = Args(
        verb=verb,
        cmdline=cmdline,
        directory=directory,
        force=int(fields["force"]),  # type: ignore[call-overload]
        debug=bool(fields["debug"]),
        debug_shell=bool(fields["debug_shell"]),
        debug_workspace=bool(fields["debug_workspace"]),
        json=bool(fields["json"]),
        auto_bump=bool(fields["auto_bump"]),
        genkey_common_name=str(fields["genkey_common_name"]),
        genkey_valid_days=str(fields["genkey_valid_days"]),
        doc_format=doc_format,
        version=bool(fields["version"]),
        no_install_cache=bool(fields["no_install_cache"]),
        pager=bool(fields["pager"]),
    )
    return args, overrides
