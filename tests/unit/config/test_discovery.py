"""Discovery in mkosi's order: local config, default paths, mkosi.conf, profiles, drop-ins, includes."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import ConfigError, OutputFormat, TreeSpec
from imagebuild.config.enums import Distribution

from .conftest import Tree


def test_empty_directory_resolves_to_defaults(tree: Tree) -> None:
    c = tree.one()
    assert c.distribution == Distribution.debian  # the host's (see conftest)
    assert c.release == "bookworm"  # same distribution as the host: the host's release
    assert c.format == OutputFormat.disk
    assert c.output == "image"
    assert c.image is None and c.directory == tree.root
    assert c.build_sources == [TreeSpec(tree.root, None)]
    assert c.kernel_command_line == ["console=ttyS0"]
    assert c.non_default == frozenset()


def test_other_distribution_uses_its_default_release(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Distribution]\nDistribution=fedora\n")
    assert tree.one().release == "39"
    tree.write("mkosi.conf", "[Distribution]\nDistribution=ubuntu\n")
    c = tree.one()
    # mkosi v22's code (not its man page): Ubuntu defaults to noble, with an Ubuntu tools tree.
    assert c.release == "noble" and c.tools_tree_distribution == Distribution.ubuntu
    assert c.tools_tree_release == "noble"


def test_minimal_example_tree(tree: Tree) -> None:
    tree.write("mkosi.conf", """
        [Distribution]
        Distribution=debian
        Release=trixie

        [Output]
        Format=directory

        [Content]
        Packages=
                systemd
                udev
        Hostname=minimal
    """)
    tree.write("mkosi.extra/etc/motd", "hi\n")
    c = tree.one()
    assert (c.distribution, c.release, c.format) == (Distribution.debian, "trixie", OutputFormat.directory)
    assert c.packages == ["systemd", "udev"]
    assert c.hostname == "minimal"
    assert c.extra_trees == [TreeSpec(tree.root / "mkosi.extra", None)]


@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("mkosi.output", "output_directory"),
        ("mkosi.cache", "cache_directory"),
        ("mkosi.builddir", "build_directory"),
        ("mkosi.tools", "tools_tree"),
    ],
)
def test_default_directories(tree: Tree, name: str, attr: str) -> None:
    tree.mkdir(name)
    c = tree.one()
    # mkosi v22 builds in a subdirectory of the build directory per distribution, release and architecture.
    target = f"{c.distribution}~{c.release}~{c.architecture}" if attr == "build_directory" else ""
    assert getattr(c, attr) == tree.root / name / target


@pytest.mark.parametrize(
    ("name", "attr"),
    [
        ("mkosi.sync", "sync_scripts"),
        ("mkosi.prepare", "prepare_scripts"),
        ("mkosi.prepare.chroot", "prepare_scripts"),
        ("mkosi.build", "build_scripts"),
        ("mkosi.build.chroot", "build_scripts"),
        ("mkosi.postinst", "postinst_scripts"),
        ("mkosi.postinst.chroot", "postinst_scripts"),
        ("mkosi.finalize", "finalize_scripts"),
        ("mkosi.finalize.chroot", "finalize_scripts"),
        ("mkosi.env", "environment_files"),
    ],
)
def test_default_scripts_and_files(tree: Tree, name: str, attr: str) -> None:
    tree.write(name, "A=1\n" if name == "mkosi.env" else "#!/bin/sh\n", mode=0o755)
    assert getattr(tree.one(), attr) == [tree.root / name]


@pytest.mark.parametrize(
    ("name", "attr"),
    [("mkosi.skeleton", "skeleton_trees"), ("mkosi.extra", "extra_trees")],
)
def test_default_trees_directory_and_tar(tree: Tree, name: str, attr: str) -> None:
    tree.mkdir(name)
    tree.write(f"{name}.tar", "")
    assert getattr(tree.one(), attr) == [TreeSpec(tree.root / name, None), TreeSpec(tree.root / f"{name}.tar", None)]


def test_skeleton_trees_are_the_default_package_manager_trees(tree: Tree) -> None:
    tree.mkdir("mkosi.skeleton")
    c = tree.one()
    assert c.package_manager_trees == c.skeleton_trees == [TreeSpec(tree.root / "mkosi.skeleton", None)]
    tree.write("mkosi.conf", "[Distribution]\nPackageManagerTrees=pm\n")
    assert tree.one().package_manager_trees == [TreeSpec(tree.root / "pm", None)]


def test_default_files(tree: Tree) -> None:
    tree.mkdir("mkosi.repart")
    tree.write("mkosi.nspawn", "[Exec]\n")
    tree.write("mkosi.key", "KEY", mode=0o600)
    tree.write("mkosi.crt", "CRT")
    tree.write("mkosi.passphrase", "pw", mode=0o600)
    tree.write("mkosi.version", "1.2.3\n")
    tree.write("mkosi.rootpw", "hashed:$6$x\n", mode=0o600)
    c = tree.one()
    assert c.repart_directories == [tree.root / "mkosi.repart"]
    assert c.nspawn_settings == tree.root / "mkosi.nspawn"
    assert c.secure_boot_key == c.verity_key == c.ssh_key == tree.root / "mkosi.key"
    assert c.secure_boot_certificate == c.verity_certificate == c.ssh_certificate == tree.root / "mkosi.crt"
    assert c.passphrase == tree.root / "mkosi.passphrase"
    assert c.image_version == "1.2.3"
    assert c.output == "image_1.2.3"
    assert c.root_password is not None and c.root_password.hashed and c.root_password.value == "$6$x"


def test_credentials_directory(tree: Tree) -> None:
    tree.write("mkosi.credentials/firstboot.locale", "de_DE.UTF-8")
    tree.write("mkosi.credentials/generated", "#!/bin/sh\necho -n made\n", mode=0o755)
    tree.write("mkosi.conf", "[Host]\nCredentials=firstboot.locale=C.UTF-8 other=1\n")
    # Credentials= take precedence over the files of mkosi.credentials/.
    assert tree.one().credentials == {"firstboot.locale": "C.UTF-8", "generated": "made", "other": "1"}


def test_explicit_settings_override_default_paths(tree: Tree) -> None:
    tree.mkdir("mkosi.output")
    tree.write("mkosi.version", "1\n")
    tree.write("mkosi.conf", "[Output]\nOutputDirectory=out\nImageVersion=2\n")
    c = tree.one()
    assert c.output_directory == tree.root / "out"
    assert c.image_version == "2"


def test_default_trees_come_before_explicit_ones(tree: Tree) -> None:
    tree.mkdir("mkosi.extra")
    tree.write("mkosi.conf", "[Content]\nExtraTrees=more:/opt\n")
    assert tree.one().extra_trees == [TreeSpec(tree.root / "mkosi.extra", None),
                                      TreeSpec(tree.root / "more", Path("/opt"))]


def test_local_conf_is_read_before_mkosi_conf(tree: Tree) -> None:
    tree.write("mkosi.local.conf", "[Content]\nHostname=local\nPackages=vim\n")
    tree.write("mkosi.conf", "[Content]\nHostname=main\nPackages=git\n")
    c = tree.one()
    assert c.hostname == "main"  # later assignment wins
    assert c.packages == ["vim", "git"]


def test_dropins_are_read_in_order_after_mkosi_conf(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nHostname=main\nPackages=a\n")
    tree.write("mkosi.conf.d/20-b.conf", "[Content]\nPackages=c\nHostname=twenty\n")
    tree.write("mkosi.conf.d/10-a.conf", "[Content]\nPackages=b\n")
    tree.write("mkosi.conf.d/30-ignored.txt", "[Content]\nPackages=nope\n")
    c = tree.one()
    assert c.packages == ["a", "b", "c"]
    assert c.hostname == "twenty"


def test_dropin_directory_is_a_config_directory(tree: Tree) -> None:
    d = "mkosi.conf.d/15-sub"
    tree.write(f"{d}/mkosi.conf", "[Content]\nPackages=sub\nExtraTrees=files\n")
    tree.write(f"{d}/mkosi.conf.d/x.conf", "[Content]\nPackages=subsub\n")
    tree.write(f"{d}/mkosi.local.conf", "[Content]\nPackages=sublocal\n")
    tree.mkdir(f"{d}/mkosi.extra")
    tree.write("mkosi.conf.d/10.conf", "[Content]\nPackages=ten\n")
    tree.write("mkosi.conf.d/20.conf", "[Content]\nPackages=twenty\n")
    c = tree.one()
    assert c.packages == ["ten", "sublocal", "sub", "subsub", "twenty"]
    sub = tree.root / d
    # Paths in a directory drop-in are relative to that directory, its default paths count too.
    assert c.extra_trees == [TreeSpec(sub / "mkosi.extra", None), TreeSpec(sub / "files", None)]


def test_paths_in_dropin_files_are_relative_to_the_config_directory(tree: Tree) -> None:
    # As in mkosi, which stays in the directory of mkosi.conf while reading mkosi.conf.d/*.conf.
    tree.write("mkosi.conf.d/10.conf", "[Content]\nExtraTrees=stuff\n")
    assert tree.one().extra_trees == [TreeSpec(tree.root / "stuff", None)]


def test_profile_file(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Config]\nProfile=dev\n[Content]\nPackages=base\n")
    tree.write("mkosi.profiles/dev.conf", "[Content]\nPackages=gdb\n")
    tree.write("mkosi.conf.d/10.conf", "[Content]\nPackages=late\n")
    c = tree.one()
    assert c.profile == "dev"
    assert c.packages == ["base", "gdb", "late"]  # after mkosi.conf, before mkosi.conf.d/


def test_profile_directory_from_the_command_line(tree: Tree) -> None:
    tree.write("mkosi.profiles/ci/mkosi.conf", "[Content]\nPackages=ci\n")
    tree.write("mkosi.profiles/ci/mkosi.conf.d/x.conf", "[Content]\nPackages=ci-dropin\n")
    assert tree.one("--profile=ci").packages == ["ci", "ci-dropin"]


def test_profile_can_be_matched_in_dropins(tree: Tree) -> None:
    tree.mkdir("mkosi.profiles/dev")
    tree.write("mkosi.conf.d/10.conf", "[Match]\nProfile=dev\n[Content]\nPackages=devtools\n")
    assert tree.one("--profile", "dev").packages == ["devtools"]
    assert tree.one().packages == []


def test_missing_profile_lists_the_available_ones(tree: Tree) -> None:
    tree.write("mkosi.profiles/a.conf", "")
    tree.mkdir("mkosi.profiles/b")
    with pytest.raises(ConfigError, match=r"Profile=c: .*available: a, b"):
        tree.one("--profile=c")


def test_profile_cannot_be_changed_after_it_was_chosen(tree: Tree) -> None:
    tree.write("mkosi.conf.d/10.conf", "[Config]\nProfile=x\n")
    with pytest.raises(ConfigError, match=r"10.conf:2: Profile= cannot be changed here"):
        tree.one()


def test_include_file_is_read_right_away(tree: Tree) -> None:
    tree.write("common/base.conf", "[Content]\nPackages=included\nHostname=inc\n")
    tree.write("mkosi.conf", "[Config]\nInclude=common/base.conf\n[Content]\nPackages=after\n")
    c = tree.one()
    assert c.packages == ["included", "after"]
    assert c.include == [tree.root / "common/base.conf"]


def test_include_directory_is_a_config_directory(tree: Tree) -> None:
    tree.write("shared/mkosi.conf", "[Content]\nPackages=shared\nExtraTrees=tree\n")
    tree.write("mkosi.conf", "[Config]\nInclude=shared\n")
    c = tree.one()
    assert c.packages == ["shared"]
    assert c.extra_trees == [TreeSpec(tree.root / "shared/tree", None)]


def test_each_include_is_read_once(tree: Tree) -> None:
    tree.write("inc.conf", "[Config]\nInclude=inc.conf\n[Content]\nPackages=once\n")
    tree.write("mkosi.conf", "[Config]\nInclude=inc.conf\nInclude=inc.conf\n")
    tree.write("mkosi.conf.d/10.conf", "[Config]\nInclude=inc.conf\n")
    assert tree.one().packages == ["once"]


def test_default_include_is_read_after_everything_else(tree: Tree) -> None:
    tree.write("late.conf", "[Content]\nHostname=late\nPackages=late\n")
    tree.write("mkosi.conf", "[Config]\n@Include=late.conf\n[Content]\nHostname=main\n")
    tree.write("mkosi.conf.d/10.conf", "[Content]\nPackages=dropin\n")
    c = tree.one()
    assert c.hostname == "late"
    assert c.packages == ["dropin", "late"]


def test_include_from_the_command_line(tree: Tree) -> None:
    tree.write("extra.conf", "[Content]\nPackages=from-cli-include\n")
    assert tree.one("--include=extra.conf").packages == ["from-cli-include"]


def test_include_of_mkosi_builtin_config_is_reported_unsupported(tree: Tree) -> None:
    from imagebuild.config import unsupported_settings

    tree.write("mkosi.conf", "[Config]\nInclude=mkosi-initrd\n")
    c = tree.one()
    assert c.include == ["mkosi-initrd"]
    assert unsupported_settings(c) == ["Include"]


def test_missing_include_is_an_error(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Config]\nInclude=nope.conf\n")
    with pytest.raises(ConfigError, match=r"mkosi.conf:2: Include=nope.conf: .*nope.conf does not exist"):
        tree.one()


def test_mkosi_conf_directory_skipped_when_its_match_fails(tree: Tree) -> None:
    d = "mkosi.conf.d/10-fedora"
    tree.write(f"{d}/mkosi.conf", "[Match]\nDistribution=fedora\n[Content]\nPackages=dnf\n")
    tree.write(f"{d}/mkosi.conf.d/x.conf", "[Content]\nPackages=also-skipped\n")
    tree.mkdir(f"{d}/mkosi.extra")
    tree.write("mkosi.conf.d/20.conf", "[Content]\nPackages=kept\n")
    c = tree.one()
    assert c.packages == ["kept"]
    assert c.extra_trees == []


def test_dropin_file_whose_match_fails_only_skips_itself(tree: Tree) -> None:
    tree.write("mkosi.conf.d/10.conf", "[Match]\nDistribution=fedora\n[Content]\nPackages=dnf\n")
    tree.write("mkosi.conf.d/20.conf", "[Content]\nPackages=apt\n")
    assert tree.one().packages == ["apt"]


def test_local_conf_match_only_applies_to_itself(tree: Tree) -> None:
    tree.write("mkosi.local.conf", "[Match]\nDistribution=fedora\n[Content]\nPackages=local\n")
    tree.write("mkosi.conf", "[Content]\nPackages=main\n")
    assert tree.one().packages == ["main"]
