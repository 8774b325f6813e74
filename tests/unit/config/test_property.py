"""Property tests: whatever text a configuration file holds, the result is a Config or a ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagebuild.config import SETTINGS, ConfigError, load
from imagebuild.config.ini import parse_ini
from imagebuild.config.settings import MATCH_NAMES, SECTIONS

SECTION_NAMES = [*SECTIONS, "Match", "TriggerMatch", "Unknown"]
KEYS = [s.name for s in SETTINGS] + [f"@{s.name}" for s in SETTINGS[:20]] + list(MATCH_NAMES) + ["Bogus"]
# No '/' in values: relative paths stay inside the temporary tree (Credentials= could run programs).
VALUE_ALPHABET = st.characters(
    codec="utf-8", exclude_characters="/", exclude_categories=["Cs"]
)
VALUES = st.one_of(
    st.sampled_from(["", "yes", "no", "auto", "1", "0", "debian", "fedora", "tar", "disk", "%d", "%%", "%v",
                     "|disk", "!tar", "|!x86-64", ">=1.2", "a,b", "a b", "x:y", "1G", "hash", ".", "..",
                     "mkosi.conf", "A=1 B", "'quoted value'", "hashed:x", "engine:pkcs11", "3", "-1"]),
    st.text(VALUE_ALPHABET, max_size=20),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "1"]), st.integers(200, 5000)),
    st.sampled_from(["a\x00b", "x:\x00", "\x00"]),
)


@st.composite
def ini_like(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        lines.append(f"[{draw(st.sampled_from(SECTION_NAMES))}]")
        for _ in range(draw(st.integers(0, 5))):
            lines.append(f"{draw(st.sampled_from(KEYS))}={draw(VALUES)}")
            if draw(st.booleans()):
                lines.append("    " + draw(VALUES))
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_ini_reader_gives_entries_or_a_config_error(text: str) -> None:
    try:
        entries = parse_ini(text, "fuzz.conf")
    except ConfigError as error:
        assert str(error).startswith("fuzz.conf:")
        return
    for entry in entries:
        assert entry.line >= 1
        assert "\n" not in entry.key and entry.key == entry.key.strip()


def _load(text: str, dropin: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        (root / "mkosi.conf").write_text(text)
        if dropin is not None:
            (root / "mkosi.conf.d").mkdir()
            (root / "mkosi.conf.d" / "10.conf").write_text(dropin)
        try:
            _, images = load(["-C", str(root), "summary"])
        except ConfigError as e:
            assert str(e)
            return
        assert images


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_any_text_as_mkosi_conf_gives_a_config_or_a_config_error(text: str) -> None:
    _load(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ini_like(), ini_like())
def test_ini_like_trees_give_a_config_or_a_config_error(text: str, dropin: str) -> None:
    _load(text, dropin)
