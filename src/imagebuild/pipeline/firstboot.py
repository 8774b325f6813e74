"""First-boot settings written into the image at build time.

Locale=, LocaleMessages=, Keymap=, Timezone=, RootShell= and RootPassword= go through the image's own
systemd-firstboot (which validates them against what the image has installed), and are also stored as
systemd credentials in /usr/lib/credstore, from where systemd-firstboot.service and systemd-sysusers.service
import them at boot: so they apply even to an image that ships only /usr. Hostname= is written directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import BuildError
from imagebuild.log import logger
from imagebuild.pipeline.image_sandbox import image_has_program, run_in_image
from imagebuild.pipeline.password import hash_password
from imagebuild.tools.run import CommandError

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.config.values import RootPassword
    from imagebuild.context import Context

CREDSTORE = "usr/lib/credstore"


@dataclass(frozen=True)
class FirstbootSetting:
    """One setting: its systemd-firstboot option and the credential systemd imports it from."""

    name: str
    option: str
    credential: str
    value: str


def root_password_hash(password: RootPassword) -> str:
    """The crypt(3) string for /etc/shadow: hashed: values as given (empty: no password), others hashed."""
    return password.value if password.hashed else hash_password(password.value)


def firstboot_settings(config: Config, password_hash: str | None) -> list[FirstbootSetting]:
    """The configured settings, with the credential names of systemd-firstboot(1) and sysusers(8)."""
    wanted = [
        ("Locale", "--locale", "firstboot.locale", config.locale),
        ("LocaleMessages", "--locale-messages", "firstboot.locale-messages", config.locale_messages),
        ("Keymap", "--keymap", "firstboot.keymap", config.keymap),
        ("Timezone", "--timezone", "firstboot.timezone", config.timezone),
        ("RootShell", "--root-shell", "passwd.shell.root", config.root_shell),
        ("RootPassword", "--root-password-hashed", "passwd.hashed-password.root", password_hash),
    ]
    return [FirstbootSetting(name, option, credential, value)
            for name, option, credential, value in wanted if value is not None]


def write_credentials(context: Context, settings: list[FirstbootSetting]) -> None:
    credstore = context.root / CREDSTORE
    # Only root may read the store: it holds the root password's hash.
    credstore.mkdir(mode=0o700, parents=True, exist_ok=True)
    credstore.chmod(0o700)
    for setting in settings:
        _write_private(credstore / setting.credential, setting.value)


def _write_private(path: Path, text: str) -> None:
    """Write a file only root can read; a symlink in its place is replaced, never followed."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# Where the root password's credential is shown to systemd-firstboot in the sandbox.
SANDBOX_CREDENTIALS = "/run/imagebuild-credentials"


def firstboot_command(settings: list[FirstbootSetting]) -> list[str]:
    """systemd-firstboot's arguments: every setting but the password, which goes in as a credential.

    Options rather than credentials for the rest, because systemd-firstboot validates options against the
    image (zoneinfo, keymaps, locales, shells) but takes credentials as they are. --force: the
    distribution's defaults (e.g. Debian's locked root account) give way to the config.
    """
    return ["systemd-firstboot", "--force",
            *(f"{s.option}={s.value}" for s in settings if s.option != "--root-password-hashed")]


def run_firstboot(context: Context, settings: list[FirstbootSetting]) -> None:
    if not image_has_program(context.root, "systemd-firstboot"):
        names = ", ".join(f"{s.name}=" for s in settings)
        raise BuildError(
            f"{names} need systemd-firstboot in the image to be applied: add systemd to Packages= "
            "or remove these settings"
        )
    # The hash never appears on a command line (ps, --debug logs): a private credentials directory.
    credentials = context.workspace / "firstboot-credentials"
    credentials.mkdir(mode=0o700, exist_ok=True)
    for setting in settings:
        if setting.option == "--root-password-hashed":
            _write_private(credentials / setting.credential, setting.value)
    try:
        run_in_image(context, firstboot_command(settings),
                     env={"CREDENTIALS_DIRECTORY": SANDBOX_CREDENTIALS},
                     ro_binds=[(credentials, SANDBOX_CREDENTIALS)])
    except CommandError as e:
        # Its own words say what is missing ("Timezone Europe/Berlin is not valid.", "Keymap de is not
        # installed.").
        reasons = " ".join(line.strip() for line in e.output.splitlines() if line.strip())
        raise BuildError(
            f"systemd-firstboot refused {', '.join(s.name + '=' for s in settings)}: {reasons} "
            "(install what provides it: tzdata for Timezone=, a generated locale or locales-all for Locale=, "
            "console keymaps for Keymap=)"
        ) from None
    finally:
        for path in credentials.iterdir():
            path.unlink()
        credentials.rmdir()


def configure_firstboot(context: Context) -> None:
    configure_hostname(context)
    config = context.config
    password_hash = root_password_hash(config.root_password) if config.root_password is not None else None
    settings = firstboot_settings(config, password_hash)
    if not settings:
        return
    run_firstboot(context, settings)
    write_credentials(context, settings)
    logger.info("first-boot settings applied: %s", ", ".join(s.name for s in settings))


def configure_hostname(context: Context) -> None:
    hostname = context.config.hostname
    if not hostname:
        return
    etc = context.root / "etc"
    etc.mkdir(exist_ok=True)
    target = etc / "hostname"
    # A symlink here (hermetic /etc setups) must not make us write outside the image.
    target.unlink(missing_ok=True)
    target.write_text(hostname + "\n")
