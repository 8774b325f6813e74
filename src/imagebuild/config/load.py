"""From command line to Configs: resolution, the values mkosi derives after it, checks, build order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagebuild.config.cmdline import parse_command_line
from imagebuild.config.errors import ConfigError, ValueProblem
from imagebuild.config.model import Args, Config
from imagebuild.config.overrides import Overrides
from imagebuild.config.resolve import Resolver
from imagebuild.config.settings import SETTINGS
from imagebuild.config.values import parse_environment
from imagebuild.config.versions import compare_versions

# The configuration language implemented here is mkosi v22's; MinimumVersion= is checked against it.
LANGUAGE_VERSION = "22"

# What mkosi v22 always puts into the script environment (see its JSON summary).
_FIXED_ENVIRONMENT = {
    "KERNEL_INSTALL_BYPASS": "1",
    "SYSTEMD_HWDB_UPDATE_BYPASS": "1",
    "SYSTEMD_TMPFILES_FORCE_SUBVOL": "0",
}


def _environment(values: dict[str, Any]) -> dict[str, str]:
    env = dict(_FIXED_ENVIRONMENT)
    if values["image_id"] is not None:
        env["IMAGE_ID"] = values["image_id"]
    if values["image_version"] is not None:
        env["IMAGE_VERSION"] = values["image_version"]
    if values["source_date_epoch"] is not None:
        env["SOURCE_DATE_EPOCH"] = str(values["source_date_epoch"])
    for f in values["environment_files"]:
        try:
            lines = f.read_text().strip().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"EnvironmentFiles={f}: cannot read it: {e}") from None
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                env.update(parse_environment(line.removeprefix("export ")))
            except ValueProblem as e:
                raise ConfigError(f"{f}:{number}: {e.describe()}") from None
    env.update(values["environment"])
    return env


def _check(name: str, values: dict[str, Any]) -> None:
    where = f"image {name}: " if name != "main" else ""
    if values["secure_boot"]:
        missing = [s for s, v in (("SecureBootKey=", values["secure_boot_key"]),
                                  ("SecureBootCertificate=", values["secure_boot_certificate"])) if v is None]
        if missing:
            raise ConfigError(
                f"{where}SecureBoot=yes needs {' and '.join(missing)}: place a key in mkosi.key and a "
                "certificate in mkosi.crt (imagebuild genkey creates both) or set the settings"
            )
    if values["overlay"] and not values["base_trees"]:
        raise ConfigError(f"{where}Overlay=yes only works together with BaseTrees=")
    if values["incremental"] and values["cache_directory"] is None:
        raise ConfigError(
            f"{where}Incremental=yes needs a cache directory: create mkosi.cache/ or set CacheDirectory="
        )
    minimum = values["minimum_version"]
    if minimum is not None and compare_versions(minimum, LANGUAGE_VERSION) > 0:
        raise ConfigError(
            f"{where}MinimumVersion={minimum}: this configuration needs mkosi {minimum} or newer; "
            f"imagebuild implements the configuration language of mkosi v{LANGUAGE_VERSION}"
        )


def make_config(resolver: Resolver, image: str | None, directory: Path, values: dict[str, Any]) -> Config:
    defaults = resolver.builtin_defaults(values)
    non_default = frozenset(s.name for s in SETTINGS if values[s.attr] != defaults[s.attr])
    _check(image or "main", values)
    # Images resolved from one global state may share list objects; give each its own.
    values = {k: list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    if values["sign"]:
        values["checksum"] = True
    if values["build_directory"] is not None:
        # As mkosi v22: builds of several targets share BuildDirectory= without mixing their objects.
        target = f"{values['distribution']}~{values['release']}~{values['architecture']}"
        values["build_directory"] = Path(values["build_directory"]) / target
    values["environment"] = _environment(values)
    return Config(directory=directory, image=image, non_default=non_default, **values)


def _build_order(configs: list[Config], wanted: list[str]) -> list[Config]:
    by_name = {c.image: c for c in configs}
    for c in configs:
        for dep in c.dependencies:
            if dep not in by_name:
                raise ConfigError(
                    f"image {c.image}: Dependencies={dep}: there is no image {dep!r} in mkosi.images/ "
                    f"(images: {', '.join(str(n) for n in by_name)})"
                )
    if wanted:
        unknown = [w for w in wanted if w not in by_name]
        if unknown:
            raise ConfigError(
                f"Images={','.join(unknown)}: no such image in mkosi.images/ "
                f"(images: {', '.join(str(n) for n in by_name)})"
            )
        roots = [by_name[w] for w in wanted]
    else:
        roots = configs

    order: list[Config] = []
    done: set[str | None] = set()
    visiting: list[str | None] = []

    def visit(c: Config) -> None:
        if c.image in done:
            return
        if c.image in visiting:
            cycle = [*visiting[visiting.index(c.image):], c.image]
            raise ConfigError(f"Dependencies= form a cycle: {' -> '.join(str(n) for n in cycle)}")
        visiting.append(c.image)
        for dep in c.dependencies:
            visit(by_name[dep])
        visiting.pop()
        done.add(c.image)
        order.append(c)

    for c in roots:
        visit(c)
    if not wanted:
        # Cycles among images nothing asked for are still errors.
        for c in configs:
            visit(c)
    return order


def load_images(args: Args, overrides: Overrides) -> list[Config]:
    """All images in build order: dependencies first.

    Without mkosi.images/ this is the one image of the top-level configuration. With mkosi.images/ it
    is the images defined there (as in mkosi v22 the global configuration is shared by them, not built
    on its own); the last one is the one boot, shell and qemu use.
    """
    top = (args.directory or Path.cwd()).absolute()
    if not top.is_dir():
        raise ConfigError(f"--directory={top}: not a directory")
    resolver = Resolver(top, overrides)
    resolved = resolver.resolve()
    configs = [make_config(resolver, name, directory, values) for name, directory, values in resolved]
    if len(configs) == 1 and configs[0].image is None:
        return configs
    return _build_order(configs, list(resolved[0][2]["images"]))


def load(argv: Sequence[str]) -> tuple[Args, list[Config]]:
    """parse_command_line and load_images; verbs that need no configuration get no images."""
    args, overrides = parse_command_line(argv)
    if not args.verb.needs_config() or args.version:
        return args, []
    return args, load_images(args, overrides)


def load_directory(directory: Path, overrides: Overrides | None = None) -> list[Config]:
    """The images of the configuration in directory, in build order, as `imagebuild -C DIRECTORY build`
    with `overrides` (values that win over the files) resolves them: the API for programs such as the
    pytest plugin, which pass typed overrides instead of composing command lines."""
    args, _ = parse_command_line(["-C", str(directory), "build"])
    return load_images(args, overrides or Overrides())
