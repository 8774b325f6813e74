"""Whole trees the way projects write them: distribution drop-ins, images, profiles, matrix overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import OutputFormat, TreeSpec

from .conftest import Tree


@pytest.fixture
def project(tree: Tree) -> Tree:
    """A project in the style of systemd's mkosi configuration."""
    tree.write("mkosi.conf", """
        [Distribution]
        @Distribution=debian
        @Release=trixie

        [Output]
        ImageId=system
        @OutputDirectory=build

        [Content]
        Packages=systemd
        Hostname=%i
    """)
    tree.write("mkosi.conf.d/10-debian.conf", """
        [Match]
        Distribution=|debian
        Distribution=|ubuntu

        [Content]
        Packages=apt
                 systemd-sysv
    """)
    tree.write("mkosi.conf.d/10-fedora.conf", """
        [Match]
        Distribution=fedora

        [Content]
        Packages=dnf
        [Distribution]
        @Release=40
    """)
    tree.write("mkosi.conf.d/20-trixie/mkosi.conf", """
        [Match]
        Release=trixie
        [Content]
        Packages=systemd-boot-efi
    """)
    tree.write("mkosi.conf.d/20-trixie/mkosi.conf.d/arm.conf", """
        [Match]
        Architecture=arm64
        [Content]
        Packages=u-boot
    """)
    tree.write("mkosi.profiles/debug.conf", "[Content]\nPackages=gdb,strace\nAutologin=yes\n")
    tree.write("mkosi.images/base/mkosi.conf", """
        [Output]
        Format=directory
        Output=base
    """)
    tree.write("mkosi.images/system/mkosi.conf", """
        [Config]
        Dependencies=base

        [Output]
        Format=disk

        [Content]
        BaseTrees=%O/base
        ExtraTrees=files:/usr/share/factory
    """)
    tree.mkdir("mkosi.images/system/files")
    return tree


def test_project_defaults(project: Tree) -> None:
    base, system = project.load()
    assert [base.image, system.image] == ["base", "system"]
    assert (system.distribution, system.release) == ("debian", "trixie")
    assert system.packages == ["systemd", "apt", "systemd-sysv", "systemd-boot-efi"]
    assert system.hostname == "system"
    out = project.root / "build"
    assert system.output_directory == base.output_directory == out
    assert system.base_trees == [out / "base"]
    assert system.extra_trees == [TreeSpec(project.root / "mkosi.images/system/files", Path("/usr/share/factory"))]
    assert (base.format, system.format) == (OutputFormat.directory, OutputFormat.disk)
    assert (base.output, system.output) == ("base", "system")


@pytest.mark.parametrize(
    ("argv", "release", "packages"),
    [
        (["-d", "fedora"], "40", ["systemd", "dnf"]),
        (["-d", "ubuntu", "-r", "noble"], "noble", ["systemd", "apt", "systemd-sysv"]),
        (["--architecture=arm64"], "trixie", ["systemd", "apt", "systemd-sysv", "systemd-boot-efi", "u-boot"]),
        (["-r", "sid"], "sid", ["systemd", "apt", "systemd-sysv"]),
    ],
)
def test_matrix_overrides(project: Tree, argv: list[str], release: str, packages: list[str]) -> None:
    system = project.load(*argv)[-1]
    assert system.release == release
    assert system.packages == packages


def test_profile_and_image_selection(project: Tree) -> None:
    images = project.load("--profile=debug", "--image=base")
    assert [c.image for c in images] == ["base"]
    # The profile comes after mkosi.conf and before mkosi.conf.d/.
    assert images[0].packages == ["systemd", "gdb", "strace", "apt", "systemd-sysv", "systemd-boot-efi"]
    assert images[0].autologin


def test_command_line_output_directory_beats_the_default(project: Tree) -> None:
    system = project.load("-O", "elsewhere")[-1]
    assert system.output_directory == project.root / "elsewhere"
    assert system.base_trees == [project.root / "elsewhere/base"]
