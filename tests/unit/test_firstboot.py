"""First-boot settings: password hashing, credential names, and how systemd-firstboot is called (faked)."""

from __future__ import annotations

import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.context import Context
from imagebuild.errors import BuildError
from imagebuild.pipeline import firstboot
from imagebuild.pipeline.password import hash_password, sha512_crypt
from imagebuild.tools.run import CommandError


def load_config(directory: Path, text: str, rootpw: str | None = None) -> Config:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mkosi.conf").write_text(text)
    if rootpw is not None:
        (directory / "mkosi.rootpw").write_text(rootpw)
        (directory / "mkosi.rootpw").chmod(0o600)
    _, images = load(["-C", str(directory), "summary"])
    return images[-1]


def make_context(tmp_path: Path, config: Config, programs: Sequence[str] = ("systemd-firstboot",)) -> Context:
    context = Context(config, tmp_path / "ws", tmp_path / "cache")
    bindir = context.root / "usr/bin"
    bindir.mkdir(parents=True)
    for name in programs:
        (bindir / name).write_text("#!/bin/sh\n")
        (bindir / name).chmod(0o755)
    return context


# Ulrich Drepper's published test vectors for SHA-512 crypt, and OpenSSL's results.
@pytest.mark.parametrize(("password", "salt", "rounds", "expected"), [
    ("Hello world!", "saltstring", 5000,
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("Hello world!", "saltstringsaltstring", 10000,
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    # These two computed by `openssl passwd -6 -salt SALT` (OpenSSL 3.0): long and non-ASCII passwords.
    ("a" * 130, "x", 5000,
     "$6$x$bmhmOu2iPuYn0O6A2CXeZKIF21yfjyr8Z6J6/hQ260hL7bkGX3Tgz.ORZjSJtLuW1uoPpzj6HlPeQfLi499mU1"),
    ("pässwörd", "salt", 5000,
     "$6$salt$eOlgcuQrKG/uUNfGuhrDpZW1IZxBa2Pv6lxKVNGUSwNJLk4VqBrq8hiThVStkFH5WAHILk9Zofxyuv2j/5vSf1"),
])
def test_sha512_crypt_matches_reference_vectors(password: str, salt: str, rounds: int, expected: str) -> None:
    assert sha512_crypt(password, salt, rounds) == expected


def test_hash_password_has_random_salt_and_verifies() -> None:
    first, second = hash_password("pw"), hash_password("pw")
    assert first != second
    _, kind, salt, digest = first.split("$")
    assert kind == "6" and len(salt) == 16 and len(digest) == 86
    assert sha512_crypt("pw", salt) == first


def test_credentials_and_options_of_every_setting(tmp_path: Path) -> None:
    config = load_config(tmp_path, "[Content]\nLocale=de_DE.UTF-8\nLocaleMessages=C.UTF-8\nKeymap=de\n"
                                   "Timezone=Europe/Berlin\nRootShell=/bin/zsh\nRootPassword=hashed:$6$s$h\n")
    assert config.root_password is not None
    settings = firstboot.firstboot_settings(config, firstboot.root_password_hash(config.root_password))
    assert [(s.option, s.credential, s.value) for s in settings] == [
        ("--locale", "firstboot.locale", "de_DE.UTF-8"),
        ("--locale-messages", "firstboot.locale-messages", "C.UTF-8"),
        ("--keymap", "firstboot.keymap", "de"),
        ("--timezone", "firstboot.timezone", "Europe/Berlin"),
        ("--root-shell", "passwd.shell.root", "/bin/zsh"),
        ("--root-password-hashed", "passwd.hashed-password.root", "$6$s$h"),
    ]


def test_rootpw_file_is_hashed_and_hashed_prefix_is_kept(tmp_path: Path) -> None:
    plain = load_config(tmp_path / "a", "", rootpw="s3cret\n")
    assert plain.root_password is not None and not plain.root_password.hashed
    hashed = firstboot.root_password_hash(plain.root_password)
    assert sha512_crypt("s3cret", hashed.split("$")[2]) == hashed
    given = load_config(tmp_path / "b", "", rootpw="hashed:$6$abc$def\n")
    assert given.root_password is not None and firstboot.root_password_hash(given.root_password) == "$6$abc$def"
    # "hashed:" alone: an unlocked root account without a password.
    empty = load_config(tmp_path / "c", "[Content]\nRootPassword=hashed:\n")
    assert empty.root_password is not None and firstboot.root_password_hash(empty.root_password) == ""


class FakeRun:
    def __init__(self, error: CommandError | None = None) -> None:
        self.calls: list[tuple[list[str], dict[str, str], dict[str, str]]] = []
        self.error = error

    def __call__(self, context: Context, argv: Sequence[str], *, what: str | None = None,
                 env: Mapping[str, str] | None = None, ro_binds: Sequence[tuple[Path, str]] = ()) -> str:
        # What the sandbox would see in the bound credential directories while the program runs.
        seen = {f"{target}/{p.name}": p.read_text() for source, target in ro_binds for p in source.iterdir()}
        self.calls.append((list(argv), dict(env or {}), seen))
        if self.error:
            raise self.error
        return ""


def test_password_reaches_firstboot_only_as_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(tmp_path / "conf", "[Content]\nTimezone=UTC\nRootShell=/bin/sh\n", rootpw="s3cret")
    context = make_context(tmp_path, config)
    fake = FakeRun()
    monkeypatch.setattr(firstboot, "run_in_image", fake)
    firstboot.configure_firstboot(context)

    [(argv, env, seen)] = fake.calls
    assert argv == ["systemd-firstboot", "--force", "--timezone=UTC", "--root-shell=/bin/sh"]
    assert not any("$6$" in a or "s3cret" in a for a in argv)
    credential = f"{env['CREDENTIALS_DIRECTORY']}/passwd.hashed-password.root"
    hashed = seen[credential]
    assert sha512_crypt("s3cret", hashed.split("$")[2]) == hashed
    # The private credentials directory is gone afterwards; the credstore keeps the settings, root-only.
    assert not (context.workspace / "firstboot-credentials").exists()
    credstore = context.root / "usr/lib/credstore"
    assert stat.S_IMODE(credstore.stat().st_mode) == 0o700
    assert (credstore / "passwd.hashed-password.root").read_text() == hashed
    assert (credstore / "firstboot.timezone").read_text() == "UTC"
    assert stat.S_IMODE((credstore / "passwd.shell.root").stat().st_mode) == 0o600


def test_firstboot_refusal_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(tmp_path / "conf", "[Content]\nTimezone=Mars/Olympus\n")
    context = make_context(tmp_path, config)
    error = CommandError("systemd-firstboot failed with exit status 1",
                         output="Failed to open timezone file '/usr/share/zoneinfo/Mars/Olympus'\n"
                                "Timezone Mars/Olympus is not valid.\n")
    monkeypatch.setattr(firstboot, "run_in_image", FakeRun(error))
    with pytest.raises(BuildError, match=r"Timezone=.*Timezone Mars/Olympus is not valid.*tzdata"):
        firstboot.configure_firstboot(context)
    assert not (context.root / "usr/lib/credstore").exists()


def test_image_without_firstboot_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(tmp_path / "conf", "[Content]\nLocale=C.UTF-8\n")
    context = make_context(tmp_path, config, programs=())
    monkeypatch.setattr(firstboot, "run_in_image", FakeRun())
    with pytest.raises(BuildError, match=r"Locale=.*systemd-firstboot.*Packages="):
        firstboot.configure_firstboot(context)


def test_nothing_configured_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(tmp_path / "conf", "[Content]\nHostname=box\n")
    context = make_context(tmp_path, config)
    fake = FakeRun()
    monkeypatch.setattr(firstboot, "run_in_image", fake)
    firstboot.configure_firstboot(context)
    assert fake.calls == []
    assert (context.root / "etc/hostname").read_text() == "box\n"
