"""Summary, JSON (parity with mkosi v22's output) and the generated documentation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from imagebuild.config import (
    SETTINGS,
    format_help,
    format_json,
    format_summary,
    load,
    to_json_dict,
)

from .conftest import Tree

SPEC = Path(__file__).parent / "data"  # copies of ../shared/spec/summary-json-example.*
# Values mkosi v22 derived from its own host or internals; the design notes exempt them.
HOST_DERIVED = {"Seed", "Credentials", "KernelCommandLineExtra"}


def example_tree(tmp_path: Path) -> Path:
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy(SPEC / "summary-json-example.conf", root / "mkosi.conf")
    return root


def test_json_matches_mkosi_v22_key_for_key(tmp_path: Path) -> None:
    root = example_tree(tmp_path)
    args, images = load(["-C", str(root), "summary", "--json"])
    assert args.json
    reference = json.loads((SPEC / "summary-json-example.json").read_text().replace("/home/user/example", str(root)))
    ours = json.loads(format_json(images))
    assert list(ours) == ["Images"] and len(ours["Images"]) == 1
    mine, theirs = ours["Images"][0], reference["Images"][0]
    assert sorted(mine) == sorted(theirs)
    for key in theirs:
        if key in HOST_DERIVED:
            continue
        if key == "Environment":
            # TERM came from the terminal v22 ran in.
            assert {k: v for k, v in theirs[key].items() if k != "TERM"} == mine[key]
            continue
        assert mine[key] == theirs[key], key


def test_json_is_pretty_printed_like_mkosi(tmp_path: Path) -> None:
    _, images = load(["-C", str(example_tree(tmp_path)), "summary"])
    text = format_json(images)
    assert text.startswith('{\n    "Images": [\n        {\n            "Acl": false,\n')


def test_json_encodings(tree: Tree) -> None:
    tree.write("mkosi.rootpw", "hashed:$6$x", mode=0o600)
    tree.mkdir("drives")
    tree.write("mkosi.conf", """
        [Validation]
        VerityKeySource=engine:pkcs11
        [Host]
        QemuDrives=d1:1G:drives:cache=unsafe
        ToolsTree=default
        QemuVsockConnectionId=auto
        RuntimeSize=1G
    """)
    j = to_json_dict(tree.one())
    assert j["RootPassword"] == ["$6$x", True]
    assert j["VerityKeySource"] == {"source": "pkcs11", "type": "engine"}
    assert j["QemuDrives"] == [{"directory": str(tree.root / "drives"), "id": "d1", "options": "cache=unsafe",
                                "size": 1024**3}]
    assert j["ToolsTree"] == "default"
    assert j["QemuVsockConnectionId"] == -1
    assert j["RuntimeSize"] == 1024**3
    assert json.loads(json.dumps(j)) == j


def test_json_of_several_images(tree: Tree) -> None:
    tree.write("mkosi.images/a.conf", "")
    tree.write("mkosi.images/b.conf", "[Config]\nDependencies=a\n")
    data = json.loads(format_json(tree.load()))
    assert [i["Image"] for i in data["Images"]] == ["a", "b"]
    assert data["Images"][1]["Dependencies"] == ["a"]


def test_summary_is_grouped_by_section(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nPackages=a,b\n[Output]\nImageId=x\n")
    tree.write("mkosi.rootpw", "topsecret", mode=0o600)
    args, images = load(["-C", str(tree.root), "summary"])
    text = format_summary(args, images)
    assert text.startswith("IMAGE: default\n")
    headers = [line.strip() for line in text.splitlines() if line.startswith("    ") and line.strip().endswith(":")
               and line.strip()[:-1].isupper()]
    assert headers == ["CONFIG:", "DISTRIBUTION:", "OUTPUT:", "CONTENT:", "VALIDATION:", "HOST:"]
    assert "Packages: a\n" in text
    assert "Image ID: x" in text
    assert "Root Password: (set)" in text and "topsecret" not in text
    # Every setting of v22 has its line; our own (InstallCache=) have none, so the summary reads as v22's.
    for s in SETTINGS:
        assert (f"{s.label}: " in text) != s.extension, s.name
    assert any(s.extension for s in SETTINGS)


def test_help_lists_every_option() -> None:
    text = format_help()
    assert text.startswith("imagebuild ") and "\nusage:\n" in text
    for s in SETTINGS:
        for option in s.options:
            assert option in text, option
    for option in ("--force", "--directory", "--json", "--auto-bump", "--doc-format", "--genkey-valid-days"):
        assert option in text


def summary_of(tree: Tree, *argv: str) -> tuple[str, dict[str, object]]:
    args, images = load(["-C", str(tree.root), *argv, "summary"])
    return format_summary(args, images), to_json_dict(images[0])


def test_build_directory_has_mkosi_v22s_per_target_subdirectory(tree: Tree) -> None:
    # mkosi v22 appends <distribution>~<release>~<architecture>, so builds of several targets can share it.
    tree.write("mkosi.conf", "[Distribution]\nDistribution=debian\nRelease=trixie\nArchitecture=arm64\n")
    tree.mkdir("mkosi.builddir")
    text, j = summary_of(tree)
    expected = tree.root / "mkosi.builddir/debian~trixie~arm64"
    assert f"Build Directory: {expected}\n" in text
    assert j["BuildDirectory"] == str(expected)
    text, j = summary_of(tree, "--build-dir", "/srv/bd", "-d", "ubuntu", "-r", "noble", "--architecture=x86-64")
    assert "Build Directory: /srv/bd/ubuntu~noble~x86-64\n" in text
    assert j["BuildDirectory"] == "/srv/bd/ubuntu~noble~x86-64"


def test_build_directory_unset_stays_unset(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Distribution]\nDistribution=debian\n")
    _, j = summary_of(tree)
    assert j["BuildDirectory"] is None


def test_ubuntu_defaults_are_mkosi_v22s(tree: Tree) -> None:
    # mkosi v22 (distributions/ubuntu.py): noble, and an Ubuntu tools tree of the same default release.
    tree.write("mkosi.conf", "[Distribution]\nDistribution=ubuntu\n")
    text, j = summary_of(tree)
    assert (j["Release"], j["ToolsTreeDistribution"], j["ToolsTreeRelease"]) == ("noble", "ubuntu", "noble")
    assert "Release: noble\n" in text
    assert "Tools Tree Distribution: ubuntu\n" in text and "Tools Tree Release: noble\n" in text
