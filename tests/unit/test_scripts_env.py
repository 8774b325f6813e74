"""The scripts' environment: the man page's table, Environment=, mkosi.env and the With*= settings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from imagebuild.config import Config, load
from imagebuild.pipeline.script_env import ScriptKind, ScriptPlaces, script_environment

# The man page's table ("Skripte"), without PROFILE (only set with Profile=). PACKAGEDIR: the text gives it
# to build scripts. SOURCE_DATE_EPOCH reaches sync scripts through Environment= (as in mkosi v22).
TABLE = {
    ScriptKind.sync: {"ARCHITECTURE", "DISTRIBUTION", "RELEASE", "CACHED", "SRCDIR", "MKOSI_UID", "MKOSI_GID",
                      "MKOSI_CONFIG", "SOURCE_DATE_EPOCH"},
    ScriptKind.prepare: {"ARCHITECTURE", "DISTRIBUTION", "RELEASE", "CHROOT_SCRIPT", "SRCDIR", "CHROOT_SRCDIR",
                         "BUILDROOT", "WITH_DOCS", "WITH_TESTS", "WITH_NETWORK", "SOURCE_DATE_EPOCH",
                         "MKOSI_UID", "MKOSI_GID", "MKOSI_CONFIG"},
    ScriptKind.build: {"ARCHITECTURE", "DISTRIBUTION", "RELEASE", "CHROOT_SCRIPT", "SRCDIR", "CHROOT_SRCDIR",
                       "BUILDDIR", "CHROOT_BUILDDIR", "DESTDIR", "CHROOT_DESTDIR", "OUTPUTDIR", "CHROOT_OUTPUTDIR",
                       "BUILDROOT", "WITH_DOCS", "WITH_TESTS", "WITH_NETWORK", "SOURCE_DATE_EPOCH",
                       "MKOSI_UID", "MKOSI_GID", "MKOSI_CONFIG", "PACKAGEDIR"},
    ScriptKind.postinst: {"ARCHITECTURE", "DISTRIBUTION", "RELEASE", "CHROOT_SCRIPT", "SRCDIR", "CHROOT_SRCDIR",
                          "OUTPUTDIR", "CHROOT_OUTPUTDIR", "BUILDROOT", "SOURCE_DATE_EPOCH", "MKOSI_UID",
                          "MKOSI_GID", "MKOSI_CONFIG"},
}
TABLE[ScriptKind.finalize] = TABLE[ScriptKind.postinst]
# Everything any script gets that is not in the table: ours, and what the config always exports.
EXTRA = {"PATH", "HOME", "SCRIPT", "KERNEL_INSTALL_BYPASS", "SYSTEMD_HWDB_UPDATE_BYPASS",
         "SYSTEMD_TMPFILES_FORCE_SUBVOL"}
ALL_DOCUMENTED = set().union(*TABLE.values()) | {"PROFILE", "CACHED"}


def load_config(directory: Path, conf: str, **files: str) -> Config:
    directory.mkdir(exist_ok=True)
    (directory / "mkosi.conf").write_text(conf)
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text)
    _, images = load(["-C", str(directory), "summary"])
    return images[0]


BASE = textwrap.dedent("""
    [Distribution]
    Distribution=debian
    Release=trixie
    Architecture=x86-64
    [Content]
    SourceDateEpoch=1700000000
""")
PLACES = ScriptPlaces(buildroot=Path("/ws/root"), helpers=Path("/ws/helpers"), build_dir=Path("/srv/b"))


@pytest.mark.parametrize("kind", list(ScriptKind))
def test_each_script_gets_exactly_its_column_of_the_table(tmp_path: Path, kind: ScriptKind) -> None:
    env = script_environment(load_config(tmp_path, BASE), kind, PLACES, host_path="/usr/bin")
    documented = {name for name in env if name in ALL_DOCUMENTED}
    assert documented == TABLE[kind]
    assert set(env) - TABLE[kind] <= EXTRA


def test_values(tmp_path: Path) -> None:
    config = load_config(tmp_path, BASE + "WithTests=no\nWithNetwork=yes\nWithDocs=no\n")
    env = script_environment(config, ScriptKind.build, PLACES, host_path="/usr/bin:/bin")
    assert env["ARCHITECTURE"] == "x86-64"
    assert env["DISTRIBUTION"] == "debian"
    assert env["RELEASE"] == "trixie"
    assert (env["WITH_TESTS"], env["WITH_NETWORK"], env["WITH_DOCS"]) == ("0", "1", "0")
    assert env["SOURCE_DATE_EPOCH"] == "1700000000"
    assert env["BUILDROOT"] == "/ws/root"
    assert env["SRCDIR"] == env["CHROOT_SRCDIR"] == "/work/src"
    assert env["DESTDIR"] == env["CHROOT_DESTDIR"] == "/work/dest"
    assert env["BUILDDIR"] == env["CHROOT_BUILDDIR"] == "/work/build"
    assert env["OUTPUTDIR"] == env["CHROOT_OUTPUTDIR"] == "/work/out"
    assert env["PACKAGEDIR"] == "/work/packages"
    assert env["SCRIPT"] == env["CHROOT_SCRIPT"] == "/work/build-script"
    assert env["MKOSI_CONFIG"] == "/work/config.json"
    assert env["PATH"] == "/ws/helpers:/usr/bin:/bin"
    assert env["MKOSI_UID"].isdigit() and env["MKOSI_GID"].isdigit()


def test_defaults_of_the_with_settings(tmp_path: Path) -> None:
    env = script_environment(load_config(tmp_path, BASE), ScriptKind.prepare, PLACES, host_path="")
    assert (env["WITH_TESTS"], env["WITH_NETWORK"], env["WITH_DOCS"]) == ("1", "0", "1")


def test_no_builddir_without_build_directory(tmp_path: Path) -> None:
    places = ScriptPlaces(buildroot=Path("/r"), helpers=Path("/h"))
    env = script_environment(load_config(tmp_path, BASE), ScriptKind.build, places, host_path="")
    assert "BUILDDIR" not in env and "CHROOT_BUILDDIR" not in env


def test_environment_and_mkosi_env(tmp_path: Path) -> None:
    config = load_config(tmp_path, BASE + "Environment=FOO=bar SHARED=from-setting\n",
                         mkosi_env="FROMFILE=yes\nSHARED=from-file\n")
    env = script_environment(config, ScriptKind.postinst, PLACES, host_path="")
    assert env["FOO"] == "bar"
    assert env["FROMFILE"] == "yes"
    # Environment= wins over mkosi.env (the man page's order).
    assert env["SHARED"] == "from-setting"


def test_documented_variables_win_over_environment(tmp_path: Path) -> None:
    config = load_config(tmp_path, BASE + "Environment=BUILDROOT=/elsewhere DISTRIBUTION=fedora\n")
    env = script_environment(config, ScriptKind.finalize, PLACES, host_path="")
    assert env["BUILDROOT"] == "/ws/root"
    assert env["DISTRIBUTION"] == "debian"


def test_invoking_user_through_sudo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_UID", "1234")
    monkeypatch.setenv("SUDO_GID", "4321")
    env = script_environment(load_config(tmp_path, BASE), ScriptKind.build, PLACES, host_path="")
    assert (env["MKOSI_UID"], env["MKOSI_GID"]) == ("1234", "4321")


def test_profile(tmp_path: Path) -> None:
    (tmp_path / "mkosi.profiles").mkdir(parents=True)
    (tmp_path / "mkosi.profiles/dev.conf").write_text("[Content]\nWithTests=no\n")
    config = load_config(tmp_path, "[Config]\nProfile=dev\n" + BASE)
    for kind in ScriptKind:
        assert script_environment(config, kind, PLACES, host_path="")["PROFILE"] == "dev"
