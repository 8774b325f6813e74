"""mkosi.images/: images inherit the global configuration; Images= and Dependencies= decide the order."""

from __future__ import annotations

import pytest

from imagebuild.config import ConfigError, OutputFormat

from .conftest import Tree


def names(tree: Tree, *argv: str) -> list[str | None]:
    return [c.image for c in tree.load(*argv)]


def test_images_inherit_the_global_configuration(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Distribution]\nRelease=trixie\n[Content]\nPackages=common\n")
    tree.write("mkosi.images/base.conf", "[Output]\nFormat=directory\n[Content]\nPackages=base\n")
    tree.write("mkosi.images/app/mkosi.conf", "[Output]\nFormat=tar\n[Content]\nPackages=app\n")
    tree.mkdir("mkosi.images/app/mkosi.extra")
    app, base = tree.load()  # in name order, as nothing depends on anything
    assert (base.image, base.format, base.packages) == ("base", OutputFormat.directory, ["common", "base"])
    assert (app.image, app.format, app.packages) == ("app", OutputFormat.tar, ["common", "app"])
    assert base.release == app.release == "trixie"
    assert app.directory == tree.root / "mkosi.images/app"
    assert app.extra_trees[0].source == tree.root / "mkosi.images/app/mkosi.extra"
    assert base.extra_trees == []


def test_image_outputs_default_to_the_image_name(tree: Tree) -> None:
    tree.write("mkosi.images/one.conf", "")
    tree.write("mkosi.images/two.conf", "[Output]\nImageId=named\nImageVersion=2\n")
    one, two = tree.load()
    assert one.output == "one"
    assert two.output == "named_2"


def test_dependencies_are_built_first(tree: Tree) -> None:
    tree.write("mkosi.images/a.conf", "[Config]\nDependencies=c\n")
    tree.write("mkosi.images/b.conf", "")
    tree.write("mkosi.images/c.conf", "[Config]\nDependencies=b\n")
    assert names(tree) == ["b", "c", "a"]


def test_images_selects_images_and_their_dependencies(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Config]\nImages=app\n")
    tree.write("mkosi.images/app.conf", "[Config]\nDependencies=base\n")
    tree.write("mkosi.images/base.conf", "")
    tree.write("mkosi.images/other.conf", "")
    assert names(tree) == ["base", "app"]
    # Images= from the command line comes first, the file's value is added.
    assert names(tree, "--image=other") == ["other", "base", "app"]


def test_images_from_the_command_line(tree: Tree) -> None:
    tree.write("mkosi.images/a.conf", "")
    tree.write("mkosi.images/b.conf", "")
    assert names(tree, "--image=b") == ["b"]


def test_image_whose_match_fails_is_skipped(tree: Tree) -> None:
    tree.write("mkosi.images/fedora/mkosi.conf", "[Match]\nDistribution=fedora\n")
    tree.write("mkosi.images/debian.conf", "[Match]\nDistribution=debian\n")
    assert names(tree) == ["debian"]


def test_image_settings_do_not_leak_into_other_images(tree: Tree) -> None:
    tree.write("common.conf", "[Content]\nPackages=inc\n")
    tree.write("mkosi.images/a.conf", "[Config]\nInclude=common.conf\n[Content]\nHostname=a\n")
    tree.write("mkosi.images/b.conf", "[Config]\nInclude=common.conf\n")
    a, b = tree.load()
    assert a.hostname == "a" and b.hostname is None
    assert a.packages == b.packages == ["inc"]  # each image reads the include once for itself


def test_no_images_directory_gives_the_main_image(tree: Tree) -> None:
    assert names(tree) == [None]


def test_images_setting_in_an_image_is_an_error(tree: Tree) -> None:
    tree.write("mkosi.images/a.conf", "[Config]\nImages=a\n")
    with pytest.raises(ConfigError, match="Images= cannot be changed here"):
        tree.load()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.conf": "[Config]\nDependencies=b\n", "b.conf": "[Config]\nDependencies=a\n"},
         "Dependencies= form a cycle: a -> b -> a"),
        ({"a.conf": "[Config]\nDependencies=a\n"}, "cycle: a -> a"),
        ({"a.conf": "[Config]\nDependencies=missing\n"}, "there is no image 'missing'"),
    ],
)
def test_dependency_errors(tree: Tree, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        tree.write(f"mkosi.images/{name}", text)
    with pytest.raises(ConfigError, match=message):
        tree.load()


def test_unknown_image_requested(tree: Tree) -> None:
    tree.write("mkosi.images/a.conf", "")
    with pytest.raises(ConfigError, match="Images=zzz: no such image"):
        tree.load("--image=zzz")
